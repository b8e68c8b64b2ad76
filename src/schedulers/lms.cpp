// Linear multistep (diffusers' LMSDiscreteScheduler, order 4 as its step() defaults to).
#include <algorithm>
#include <array>
#include <cmath>
#include <deque>

#include "schedulers/scheduler_impl.h"

namespace sdinterp::detail {
namespace {

constexpr size_t kOrder = 4;

// QUADPACK's 21-point Gauss-Kronrod rule (Piessens et al., 1983): the abscissae of the Kronrod
// points in (0, 1] and their weights, largest abscissa first (the last is the centre), and the
// weights of the 10-point Gauss rule at every second of those points.
constexpr std::array<double, 11> kKronrodNodes{0.995657163025808080735527280689003,
                                               0.973906528517171720077964012084452,
                                               0.930157491355708226001207180059508,
                                               0.865063366688984510732096688423493,
                                               0.780817726586416897063717578345042,
                                               0.679409568299024406234327365114874,
                                               0.562757134668604683339000099272694,
                                               0.433395394129247190799265943165784,
                                               0.294392862701460198131126603103866,
                                               0.148874338981631210884826001129720,
                                               0.0};
constexpr std::array<double, 11> kKronrodWeights{
    0.011694638867371874278064396062192, 0.032558162307964727478818972459390, 0.054755896574351996031381300244580,
    0.075039674810919952767043140916190, 0.093125454583697605535065465083366, 0.109387158802297641899210590325805,
    0.123491976262065851077208745526637, 0.134709217311473325928054001771707, 0.142775938577060080797094273138717,
    0.147739104901338491374841515972068, 0.149445554002916905664936468389821};

// The 21-point Kronrod estimate of the integral of f over [a, b], its terms summed in QUADPACK's
// order (dqk21): the centre, then the Gauss points' pairs, then the others'.
template <typename F>
double kronrod21(const F& f, double a, double b) {
  const double centre = 0.5 * (a + b);
  const double half = 0.5 * (b - a);
  double sum = kKronrodWeights[10] * f(centre);
  for (size_t first : {size_t{1}, size_t{0}}) {
    for (size_t k = first; k < 10; k += 2) {
      const double x = half * kKronrodNodes[k];
      const double pair = f(centre - x) + f(centre + x);
      sum = sum + kKronrodWeights[k] * pair;
    }
  }
  return sum * half;
}

class LmsScheduler final : public SigmaScheduler {
 public:
  using SigmaScheduler::SigmaScheduler;

  torch::Tensor step(const torch::Tensor& model_output, size_t i, const torch::Tensor& sample) override {
    expect_call(i);
    torch::Tensor derivative = this->derivative(i, sample, model_output);
    // The polynomial's order follows the position in the schedule, but only the derivatives of
    // this run are summed (diffusers zips the coefficients with them: after an img2img start the
    // first steps use fewer terms than the order).
    const size_t order = std::min(i + 1, kOrder);
    const size_t terms = std::min(order, history_.size() + 1);
    // As diffusers: the terms summed newest first (derivative k was taken at sigmas_[i - k]), then
    // added to the sample.
    torch::Tensor sum = derivative * coefficient(i, order, 0);
    for (size_t k = 1; k < terms; ++k) sum = sum + history_[history_.size() - k] * coefficient(i, order, k);
    history_.push_back(std::move(derivative));
    if (history_.size() == kOrder) history_.pop_front();  // at most kOrder - 1 older ones are used
    finish_call();
    return sample + sum;
  }

 private:
  // Integral over [sigma_i, sigma_{i+1}] of the Lagrange basis polynomial that is 1 at
  // sigma_{i-j} and 0 at the other nodes sigma_{i-k}, k < order. As diffusers computes it: scipy's
  // quad, which for a polynomial of this degree accepts the 21-point Kronrod estimate at once, of
  // the basis evaluated in float32 (diffusers' sigmas are float32 tensors). The coefficients are
  // then diffusers' bit for bit (every one at 3, 8, 15, 25, 30, 50 and 100 steps; at 1000 steps,
  // where quad subdivides a few intervals, 3 of 3994 differ in their last bits). Exact integrals
  // round to another float32 in 15 of the 54 coefficients of 15 steps.
  double coefficient(size_t i, size_t order, size_t j) const {
    auto basis = [&](double tau) {
      const float at = static_cast<float>(tau);
      float product = 1.0f;
      for (size_t k = 0; k < order; ++k) {
        if (k == j) continue;
        const float node = static_cast<float>(sigmas_[i - k]);
        const float numerator = at - node;
        const float denominator = static_cast<float>(sigmas_[i - j]) - node;
        product = product * (numerator / denominator);
      }
      return static_cast<double>(product);
    };
    return kronrod21(basis, sigmas_[i], sigmas_[i + 1]);
  }

  std::deque<torch::Tensor> history_;  // derivatives of the latest calls, oldest first
};

}  // namespace

std::unique_ptr<Scheduler> make_lms_scheduler(const NoiseSchedule& schedule, int steps, bool karras) {
  return std::make_unique<LmsScheduler>(schedule, steps, karras);
}

}  // namespace sdinterp::detail
