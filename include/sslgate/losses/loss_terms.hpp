#pragma once
// What every loss of losses/ returns from evaluate(): the total (a scalar tensor on the tape) and its named,
// UNWEIGHTED terms, so a trainer can log each term and tests can check each one on its own.
//   vicreg{}.evaluate(tp, z1, z2) -> {total = 25 inv + 25 var + 1 cov, terms = {invariance, variance, covariance}}
// operator() of a loss returns evaluate(...).total. detach(x) is the stop-gradient used by SimSiam and BYOL.
#include <sslgate/autograd/tape.hpp>

#include <string>
#include <utility>
#include <vector>

namespace sslgate::losses {

template <real T>
struct named_loss {
  tensor<T> total;                                          // shape [], on the tape
  std::vector<std::pair<std::string, tensor<T>>> terms;     // unweighted terms, in a fixed order

  // The term called name; throws value_error when there is none.
  const tensor<T>& term(std::string_view name) const {
    for (const auto& [n, t] : terms)
      if (n == name) return t;
    fail<value_error>("named_loss::term", "no term called '{}'", name);
  }
  // Plain values for logging: {"<prefix>", total}, {"<prefix>.<term>", value}, ...
  std::vector<std::pair<std::string, double>> values(const std::string& prefix) const {
    std::vector<std::pair<std::string, double>> v{{prefix, static_cast<double>(total.item())}};
    for (const auto& [n, t] : terms) v.emplace_back(prefix + "." + n, static_cast<double>(t.item()));
    return v;
  }
};

// Stop-gradient: the same values on a new node that the tape does not connect to x, so no gradient reaches x
// through the result (the analogue of torch's .detach(); shares storage, so do not write into it).
template <real T>
tensor<T> detach(const tensor<T>& x) {
  return x.view_as(x.dims());
}

}  // namespace sslgate::losses
