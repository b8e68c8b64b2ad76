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
    const double alpha = 1.0 / std::sqrt(sigmas_[i] * sigmas_[i] + 1.0);
    return detail::apply(Linear{alpha, sigmas_[i] * alpha}, original, noise);
  }

  torch::Tensor step(const torch::Tensor& model_output, size_t i, const torch::Tensor& sample) override {
    expect_call(i);
    // sigmas_ are "x = x0 + sigma * noise" levels; the solver works with the variance-preserving
    // alpha = 1 / sqrt(sigma^2 + 1) and sigma_vp = sigma * alpha, so lambda = -log(sigma).
    const double sigma = sigmas_[i];
    const double sigma_next = sigmas_[i + 1];
    const double alpha_s = 1.0 / std::sqrt(sigma * sigma + 1.0);
    const double alpha_t = 1.0 / std::sqrt(sigma_next * sigma_next + 1.0);
    const Linear x0_term = prediction_type_ == PredictionType::kEpsilon ? Linear{1.0 / alpha_s, -sigma}
                                                                        : Linear{alpha_s, -sigma * alpha_s};
    const torch::Tensor x0 = apply(x0_term, sample, model_output);

    const double sample_factor = (sigma_next * alpha_t) / (sigma * alpha_s);
    const double phi = alpha_t * (sigma_next / sigma - 1.0);  // alpha_t * (exp(-h) - 1)
    // First order on the first step (no history) and on the last, which lands on sigma 0.
    const bool first_order = calls_made() == 0 || i + 2 == sigmas_.size();
    torch::Tensor result;
    if (first_order) {
      result = (sample * sample_factor).add_(x0, -phi);
    } else {
      const double h = std::log(sigma / sigma_next);
      const double h_prev = std::log(sigmas_[i - 1] / sigma);
      const double half_over_r = 0.5 * h / h_prev;  // 0.5 / r0, r0 = h_prev / h
      result = (sample * sample_factor).add_(x0, -phi * (1.0 + half_over_r)).add_(prev_x0_, phi * half_over_r);
    }
    prev_x0_ = x0;
    finish_call();
    return result;
  }

 private:
  PredictionType prediction_type_;
  torch::Tensor prev_x0_;  // the data prediction of the previous call
};

}  // namespace

std::unique_ptr<Scheduler> make_dpmpp_2m_scheduler(const NoiseSchedule& schedule, int steps, bool karras) {
  return std::make_unique<DpmSolverScheduler>(schedule, steps, karras);
}

}  // namespace sdinterp::detail
