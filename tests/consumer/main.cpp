// Uses the installed headers the way a user would: a tiny linear model, one gradient step, checked.
#include <sslgate/sslgate.hpp>
#if SSLGATE_WITH_CUDA
#include <sslgate/core/cuda/runtime.hpp>
#endif

#include <cstdio>

int main() {
  using namespace sslgate;
  auto x = tensor<float>::from({2, 3}, {1, 2, 3, 4, 5, 6});
  auto w = tensor<float>::from({1, 3}, {0.5f, -1, 2});
  w.set_requires_grad();
  tape<float> tp;
  auto loss = ops::sum(tp, ops::linear(tp, x, w));  // sum of x w^T = (1+4)*0.5 + (2+5)*-1 + (3+6)*2 = 13.5
  tp.backward(loss);
  const bool ok = loss.item() == 13.5f && w.grad().to_vector() == std::vector<float>{5, 7, 9};
  std::printf("consumer: loss %.1f, grad [%g %g %g]: %s\n", loss.item(), w.grad()[0], w.grad()[1], w.grad()[2], ok ? "ok" : "WRONG");
#if SSLGATE_WITH_CUDA
  std::printf("consumer: linked sslgate::cuda, %d CUDA device(s)\n", cuda::device_count());
#endif
  return ok ? 0 : 1;
}
