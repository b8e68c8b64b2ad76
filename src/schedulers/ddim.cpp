// DDIM with eta = 0 (diffusers' DDIMScheduler as Stable Diffusion configures it: "leading"
// spacing, steps_offset 1, set_alpha_to_one false, clip_sample false).
#include <algorithm>
#include <cmath>

#include "schedulers/scheduler_impl.h"

namespace sdinterp::detail {
namespace {

// One DDIM transfer with eta = 0, from the noise level alphas_cumprod = alpha_from to alpha_to
// (float32 scalar tensors), as diffusers' DDIMScheduler and DDIMInverseScheduler compute it.
torch::Tensor ddim_transfer(const torch::Tensor& alpha_from, const torch::Tensor& alpha_to, const torch::Tensor& sample,
                            const torch::Tensor& model_output, PredictionType prediction_type) {
  const torch::Tensor beta_from = 1 - alpha_from;
  torch::Tensor x0;
  torch::Tensor noise;
  if (prediction_type == PredictionType::kEpsilon) {
    x0 = (sample - beta_from.pow(0.5) * model_output) / alpha_from.pow(0.5);
    noise = model_output;
  } else {
    x0 = alpha_from.pow(0.5) * sample - beta_from.pow(0.5) * model_output;
    noise = alpha_from.pow(0.5) * model_output + beta_from.pow(0.5) * sample;
  }
  // eta = 0: no fresh noise, the predicted noise is carried over in full.
  const torch::Tensor direction = (1 - alpha_to).pow(0.5) * noise;
  return alpha_to.pow(0.5) * x0 + direction;
}

class DdimScheduler final : public AlphaScheduler {
 public:
  DdimScheduler(const NoiseSchedule& schedule, int steps)
      : AlphaScheduler(schedule), step_ratio_(schedule.num_train_timesteps / steps) {
    for (int64_t t : leading_timesteps(train_.num_train_timesteps, steps, 1)) {
      timesteps_.push_back(static_cast<double>(t));
    }
  }

  torch::Tensor step(const torch::Tensor& model_output, size_t i, const torch::Tensor& sample) override {
    expect_call(i);
    const auto t = static_cast<int64_t>(timesteps_[i]);
    // set_alpha_to_one = false: the step past t = 0 lands on the first training step's alpha.
    torch::Tensor result =
        ddim_transfer(alpha(t), alpha(t - step_ratio_), sample, model_output, train_.prediction_type);
    finish_call();
    return result;
  }

 private:
  int64_t step_ratio_;
};

}  // namespace

std::unique_ptr<Scheduler> make_ddim_scheduler(const NoiseSchedule& schedule, int steps) {
  return std::make_unique<DdimScheduler>(schedule, steps);
}

}  // namespace sdinterp::detail

namespace sdinterp {

DdimInversion::DdimInversion(const NoiseSchedule& schedule, int steps)
    : step_ratio_(schedule.num_train_timesteps / steps), prediction_type_(schedule.prediction_type) {
  alphas_cumprod_ = detail::float32_alphas_cumprod(schedule);
  const int n = schedule.num_train_timesteps;
  std::vector<int64_t> leading = detail::leading_timesteps(n, steps, 1);
  for (auto t = leading.rbegin(); t != leading.rend(); ++t) timesteps_.push_back(static_cast<double>(*t));
}

torch::Tensor DdimInversion::step(const torch::Tensor& model_output, size_t i, const torch::Tensor& sample) const {
  const auto t = static_cast<int64_t>(timesteps_.at(i));
  // From the previous timestep's level (below the first: the first training step's, as
  // set_alpha_to_one false) up to t's; the timestep is capped at the last training step.
  const int64_t from = std::min<int64_t>(t - step_ratio_, static_cast<int64_t>(alphas_cumprod_.size()) - 1);
  const double alpha_from = alphas_cumprod_[static_cast<size_t>(std::max<int64_t>(from, 0))];
  const double alpha_to = alphas_cumprod_[static_cast<size_t>(t)];
  return detail::ddim_transfer(detail::float32_scalar(alpha_from), detail::float32_scalar(alpha_to), sample,
                               model_output, prediction_type_);
}

}  // namespace sdinterp
