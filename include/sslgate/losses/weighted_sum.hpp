#pragma once
// Weighted sums of losses, for objectives such as VICReg-Dual:  vicreg(z_g, z_d) + flops_budget(rho) + bound(d, p).
//
// Static composition (each loss keeps its own arguments, passed as one tuple per loss):
//   weighted_sum<vicreg, flops_budget, bound> obj;                  // weights default to 1
//   auto r = obj(tp, std::forward_as_tuple(z_g, z_d), std::forward_as_tuple(rho), std::forward_as_tuple(d, p));
//   tp.backward(r.total);  log(r.terms);
// Dynamic composition: term_sum<T> s; s.add("vicreg", 1.0, vicreg{}.evaluate(tp, z1, z2)); ... s.total(tp).
// terms (for logging) = {"total", T}, then per loss {"<name>", weight * value}, {"<name>.<term>", unweighted term}.
#include <sslgate/losses/loss_terms.hpp>
#include <sslgate/ops/elementwise.hpp>

#include <array>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace sslgate::losses {

template <real T>
struct weighted_result {
  tensor<T> total;                                      // shape [], on the tape
  std::vector<std::pair<std::string, double>> terms;    // for logging
  double value(std::string_view name) const {
    for (const auto& [n, v] : terms)
      if (n == name) return v;
    fail<value_error>("weighted_result", "no term called '{}'", name);
  }
};

template <real T>
class term_sum {
 public:
  // Adds weight * loss.total; its terms are logged under name.
  void add(const std::string& name, double weight, const named_loss<T>& loss) {
    parts_.push_back({name, weight, loss});
  }
  void add(const std::string& name, double weight, const tensor<T>& loss) { add(name, weight, named_loss<T>{loss, {}}); }

  weighted_result<T> result(tape<T>& tp) const {
    SSLGATE_CHECK(!parts_.empty(), value_error, "weighted_sum", "no losses to add");
    weighted_result<T> r;
    std::vector<std::pair<std::string, double>> rest;
    for (const auto& p : parts_) {
      const tensor<T> w = p.weight == 1.0 ? p.loss.total : ops::scale(tp, p.loss.total, p.weight);
      r.total = r.total.empty() ? w : ops::add(tp, r.total, w);
      rest.emplace_back(p.name, p.weight * static_cast<double>(p.loss.total.item()));
      for (const auto& [n, t] : p.loss.terms) rest.emplace_back(p.name + "." + n, static_cast<double>(t.item()));
    }
    r.terms.emplace_back("total", static_cast<double>(r.total.item()));
    r.terms.insert(r.terms.end(), rest.begin(), rest.end());
    return r;
  }
  tensor<T> total(tape<T>& tp) const { return result(tp).total; }

 private:
  struct part {
    std::string name;
    double weight;
    named_loss<T> loss;
  };
  std::vector<part> parts_;
};

template <class... L>
struct weighted_sum {
  static constexpr std::size_t size = sizeof...(L);
  std::tuple<L...> losses;
  std::array<double, size> weights;
  std::array<std::string, size> names;  // log names; default L::name (rename when a loss type appears twice)

  weighted_sum() : weighted_sum(L{}...) {}
  explicit weighted_sum(L... l) : losses(std::move(l)...), names{std::string(L::name)...} { weights.fill(1.0); }

  template <std::size_t I>
  auto& get() { return std::get<I>(losses); }
  template <std::size_t I>
  const auto& get() const { return std::get<I>(losses); }

  // One tuple of arguments per loss, in order (std::forward_as_tuple(...)).
  template <real T, class... Args>
  weighted_result<T> operator()(tape<T>& tp, Args&&... args) const {
    static_assert(sizeof...(Args) == size, "weighted_sum: give one argument tuple per loss");
    term_sum<T> s;
    add_all(tp, s, std::index_sequence_for<L...>{}, std::forward<Args>(args)...);
    return s.result(tp);
  }

 private:
  template <real T, std::size_t... I, class... Args>
  void add_all(tape<T>& tp, term_sum<T>& s, std::index_sequence<I...>, Args&&... args) const {
    (s.add(names[I], weights[I],
           std::apply([&](auto&&... a) { return std::get<I>(losses).evaluate(tp, std::forward<decltype(a)>(a)...); },
                      std::forward<Args>(args))),
     ...);
  }
};

}  // namespace sslgate::losses
