// PLMS (diffusers' PNDMScheduler with skip_prk_steps, as Stable Diffusion configures it:
// "leading" spacing, steps_offset 1, set_alpha_to_one false).
#include <algorithm>
#include <array>
#include <cmath>
#include <deque>

#include "schedulers/scheduler_impl.h"

namespace sdinterp::detail {
namespace {

// Adams-Bashforth weights of orders 1 to 4, newest model output first.
constexpr std::array<std::array<double, 4>, 4> kAdamsBashforth{{
    {1.0, 0.0, 0.0, 0.0},
    {3.0 / 2.0, -1.0 / 2.0, 0.0, 0.0},
    {23.0 / 12.0, -16.0 / 12.0, 5.0 / 12.0, 0.0},
    {55.0 / 24.0, -59.0 / 24.0, 37.0 / 24.0, -9.0 / 24.0},
}};

class PndmScheduler final : public AlphaScheduler {
 public:
  PndmScheduler(const NoiseSchedule& schedule, int steps)
      : AlphaScheduler(schedule), step_ratio_(schedule.num_train_timesteps / steps) {
    // Without Runge-Kutta warm-up the second timestep is visited twice: its first call only
    // corrects the first step (see step()), its second call advances.
    const std::vector<int64_t> leading = leading_timesteps(train_.num_train_timesteps, steps, 1);
    for (size_t k = 0; k < leading.size(); ++k) {
      timesteps_.push_back(static_cast<double>(leading[k]));
      if (k == 1) timesteps_.push_back(static_cast<double>(leading[k]));
    }
  }

  torch::Tensor step(const torch::Tensor& model_output, size_t i, const torch::Tensor& sample) override {
    expect_call(i);
    auto t = static_cast<int64_t>(timesteps_[i]);
    torch::Tensor result;
    // diffusers counts the calls made (from an img2img start too), not the position in the list.
    const size_t made = calls_made();
    if (made == 1) {
      // Redo the first step from its start with the mean of the outputs at both of its ends
      // (a Heun step); this output is not kept for the multistep history.
      const torch::Tensor mean_output = (model_output + outputs_.back()) * 0.5;
      result = prev_sample(first_sample_, t + step_ratio_, t, mean_output);
      first_sample_ = torch::Tensor();
    } else {
      const size_t order = std::min(outputs_.size() + 1, kAdamsBashforth.size());
      const std::array<double, 4>& weights = kAdamsBashforth[order - 1];
      torch::Tensor combined = order == 1 ? model_output : model_output * weights[0];
      for (size_t k = 1; k < order; ++k) combined.add_(outputs_[outputs_.size() - k], weights[k]);
      result = prev_sample(sample, t, t - step_ratio_, combined);
      if (made == 0) first_sample_ = sample;
      outputs_.push_back(model_output);
      if (outputs_.size() == kAdamsBashforth.size()) outputs_.pop_front();  // only 3 older ones are used
    }
    finish_call();
    return result;
  }

 private:
  // The PNDM transfer from timestep t to prev_t given the noise prediction `output` (a DDIM
  // step written as in the PNDM paper).
  torch::Tensor prev_sample(const torch::Tensor& sample, int64_t t, int64_t prev_t, const torch::Tensor& output) const {
    const double alpha_prod = train_.alphas_cumprod[static_cast<size_t>(t)];
    // set_alpha_to_one = false: the step past t = 0 lands on the first training step's alpha.
    const double alpha_prod_prev = train_.alphas_cumprod[static_cast<size_t>(std::max<int64_t>(prev_t, 0))];
    const Linear noise = train_.prediction_type == PredictionType::kEpsilon
                             ? Linear{0.0, 1.0}
                             : Linear{std::sqrt(1.0 - alpha_prod), std::sqrt(alpha_prod)};
    const double denominator =
        alpha_prod * std::sqrt(1.0 - alpha_prod_prev) + std::sqrt(alpha_prod * (1.0 - alpha_prod) * alpha_prod_prev);
    const double noise_factor = -(alpha_prod_prev - alpha_prod) / denominator;
    return apply(Linear{std::sqrt(alpha_prod_prev / alpha_prod), 0.0} + noise_factor * noise, sample, output);
  }

  int64_t step_ratio_;
  std::deque<torch::Tensor> outputs_;  // model outputs kept for the multistep, oldest first
  torch::Tensor first_sample_;         // the sample before the first step, until it is redone
};

}  // namespace

std::unique_ptr<Scheduler> make_pndm_scheduler(const NoiseSchedule& schedule, int steps) {
  return std::make_unique<PndmScheduler>(schedule, steps);
}

}  // namespace sdinterp::detail
