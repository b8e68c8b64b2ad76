// Linear multistep (diffusers' LMSDiscreteScheduler, order 4 as its step() defaults to).
#include <algorithm>
#include <array>
#include <cmath>
#include <deque>

#include "schedulers/scheduler_impl.h"

namespace sdinterp::detail {
namespace {

constexpr size_t kOrder = 4;

// Gauss-Legendre with n nodes integrates polynomials of degree 2n - 1 exactly; the integrand
// below, a Lagrange basis polynomial over kOrder nodes, has degree kOrder - 1.
constexpr size_t kGaussNodes = 2;
static_assert(2 * kGaussNodes - 1 >= kOrder - 1, "quadrature not exact for this order");

class LmsScheduler final : public SigmaScheduler {
 public:
  using SigmaScheduler::SigmaScheduler;

  torch::Tensor step(const torch::Tensor& model_output, size_t i, const torch::Tensor& sample) override {
    expect_call(i);
    const torch::Tensor derivative = apply(this->derivative(i), sample, model_output);
    // The polynomial's order follows the position in the schedule, but only the derivatives of
    // this run are summed (diffusers zips the coefficients with them: after an img2img start the
    // first steps use fewer terms than the order).
    const size_t order = std::min(i + 1, kOrder);
    const size_t terms = std::min(order, history_.size() + 1);
    // Newest derivative first: derivative k was taken at sigmas_[i - k].
    torch::Tensor prev = at::add(sample, derivative, coefficient(i, order, 0));
    for (size_t k = 1; k < terms; ++k) {
      prev.add_(history_[history_.size() - k], coefficient(i, order, k));
    }
    history_.push_back(derivative);
    if (history_.size() == kOrder) history_.pop_front();  // at most kOrder - 1 older ones are used
    finish_call();
    return prev;
  }

 private:
  // Integral over [sigma_i, sigma_{i+1}] of the Lagrange basis polynomial that is 1 at
  // sigma_{i-j} and 0 at the other nodes sigma_{i-k}, k < order.
  double coefficient(size_t i, size_t order, size_t j) const {
    const std::array<double, kGaussNodes> nodes{-1.0 / std::sqrt(3.0), 1.0 / std::sqrt(3.0)};
    const std::array<double, kGaussNodes> weights{1.0, 1.0};
    const double from = sigmas_[i];
    const double to = sigmas_[i + 1];
    const double half = 0.5 * (to - from);
    double integral = 0.0;
    for (size_t n = 0; n < kGaussNodes; ++n) {
      const double tau = from + half * (nodes[n] + 1.0);
      double basis = 1.0;
      for (size_t k = 0; k < order; ++k) {
        if (k == j) continue;
        basis *= (tau - sigmas_[i - k]) / (sigmas_[i - j] - sigmas_[i - k]);
      }
      integral += weights[n] * basis;
    }
    return half * integral;
  }

  std::deque<torch::Tensor> history_;  // derivatives of the latest calls, oldest first
};

}  // namespace

std::unique_ptr<Scheduler> make_lms_scheduler(const NoiseSchedule& schedule, int steps, bool karras) {
  return std::make_unique<LmsScheduler>(schedule, steps, karras);
}

}  // namespace sdinterp::detail
