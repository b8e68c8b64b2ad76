// DPM-Solver++(2M) (diffusers' DPMSolverMultistepScheduler with its defaults: solver order 2,
// "dpmsolver++" data prediction, midpoint solver, lower_order_final, final sigma 0).
#include <cmath>
#include <string>

#include "schedulers/scheduler_impl.h"
#include "sdinterp/errors.h"

namespace sdinterp::detail {
namespace {

class DpmSolverScheduler final : public UnscaledInputScheduler {
 public:
  DpmSolverScheduler(const NoiseSchedule& schedule, int steps, bool karras)
      : prediction_type_(schedule.prediction_type) {
    const TrainingSchedule train(schedule);
    if (karras) {
      sigmas_ = karras_sigmas(train.sigmas.front(), train.sigmas.back(), steps);
      // diffusers rounds these to integer timesteps (numpy rounds halves to even, as nearbyint).
      for (double sigma : sigmas_) timesteps_.push_back(std::nearbyint(sigma_to_t(sigma, train.log_sigmas)));
    } else {
      // "linspace" spacing over steps + 1 points, the last one (t = 0) dropped.
      const std::vector<double> times = numpy_linspace(0.0, train.num_train_timesteps - 1.0, steps + 1);
      for (int k = steps; k >= 1; --k) {
        timesteps_.push_back(std::nearbyint(times[static_cast<size_t>(k)]));
        sigmas_.push_back(interp_at(train.sigmas, timesteps_.back()));
      }
    }
    for (double& sigma : sigmas_) sigma = to_float32(sigma);
    sigmas_.push_back(0.0);
    // The solver divides by log(sigma_i / sigma_{i+1}): each step must lower the noise.
    for (size_t i = 0; i + 1 < sigmas_.size(); ++i) {
      if (!(sigmas_[i + 1] < sigmas_[i])) {
        throw ConfigError("dpmpp_2m: " + std::to_string(steps) +
                          " steps repeat a noise level of the training schedule; use fewer steps");
      }
    }
  }

  torch::Tensor add_noise(const torch::Tensor& original, const torch::Tensor& noise, size_t i) const override {
    check_index(i);
    const Levels at = levels(i);
    return at.alpha * original + at.sigma * noise;  // as diffusers
  }

  torch::Tensor step(const torch::Tensor& model_output, size_t i, const torch::Tensor& sample) override {
    expect_call(i);
    // As diffusers computes it, in float32 scalars: sigmas_ are "x = x0 + sigma * noise" levels;
    // the solver works with the variance-preserving alpha = 1 / sqrt(sigma^2 + 1), sigma * alpha
    // and their log ratio lambda.
    const Levels now = levels(i);
    const Levels next = levels(i + 1);
    const torch::Tensor x0 = prediction_type_ == PredictionType::kEpsilon
                                 ? (sample - now.sigma * model_output) / now.alpha
                                 : now.alpha * sample - now.sigma * model_output;
    const torch::Tensor h = next.lambda - now.lambda;
    const torch::Tensor phi = next.alpha * ((-h).exp() - 1.0);
    // First order on the first step (no history) and on the last, which lands on sigma 0.
    const bool first_order = calls_made() == 0 || i + 2 == sigmas_.size();
    torch::Tensor result;
    if (first_order) {
      result = (next.sigma / now.sigma) * sample - phi * x0;
    } else {
      const torch::Tensor r0 = (now.lambda - levels(i - 1).lambda) / h;
      const torch::Tensor d1 = r0.reciprocal() * 1.0 * (x0 - prev_x0_);  // (1.0 / r0) * (m0 - m1)
      result = (next.sigma / now.sigma) * sample - phi * x0 - 0.5 * phi * d1;
    }
    prev_x0_ = x0;
    finish_call();
    return result;
  }

 private:
  // The variance-preserving levels of sigmas_[i] as diffusers computes them (float32 scalars).
  struct Levels {
    torch::Tensor alpha;
    torch::Tensor sigma;
    torch::Tensor lambda;  // log(alpha) - log(sigma)
  };
  Levels levels(size_t i) const {
    const torch::Tensor s = float32_scalar(sigmas_.at(i));
    const torch::Tensor alpha = vp_scale(s).reciprocal() * 1;  // 1 / (s^2 + 1) ** 0.5
    const torch::Tensor sigma = s * alpha;
    return {alpha, sigma, alpha.log() - sigma.log()};
  }

  PredictionType prediction_type_;
  torch::Tensor prev_x0_;  // the data prediction of the previous call
};

}  // namespace

std::unique_ptr<Scheduler> make_dpmpp_2m_scheduler(const NoiseSchedule& schedule, int steps, bool karras) {
  return std::make_unique<DpmSolverScheduler>(schedule, steps, karras);
}

}  // namespace sdinterp::detail
