// PLMS (diffusers' PNDMScheduler with skip_prk_steps, as Stable Diffusion configures it:
// "leading" spacing, steps_offset 1, set_alpha_to_one false).
#include <algorithm>
#include <cmath>
#include <deque>

#include "schedulers/scheduler_impl.h"

namespace sdinterp::detail {
namespace {

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
      result = prev_sample(first_sample_, t + step_ratio_, t, (model_output + outputs_.back()) / 2);
      first_sample_ = torch::Tensor();
    } else {
      outputs_.push_back(model_output);
      if (outputs_.size() > kOrder) outputs_.pop_front();
      result = prev_sample(sample, t, t - step_ratio_, adams_bashforth());
      if (made == 0) first_sample_ = sample;
    }
    finish_call();
    return result;
  }

 private:
  // The PNDM transfer from timestep t to prev_t given the noise prediction `output` (a DDIM
  // step written as in the PNDM paper).
  torch::Tensor prev_sample(const torch::Tensor& sample, int64_t t, int64_t prev_t, torch::Tensor output) const {
    // As diffusers computes it, in float32 scalars. set_alpha_to_one = false: the step past t = 0
    // lands on the first training step's alpha.
    const torch::Tensor alpha_prod = alpha(t);
    const torch::Tensor alpha_prod_prev = alpha(prev_t);
    const torch::Tensor beta_prod = 1 - alpha_prod;
    const torch::Tensor beta_prod_prev = 1 - alpha_prod_prev;
    if (train_.prediction_type != PredictionType::kEpsilon) {
      output = alpha_prod.pow(0.5) * output + beta_prod.pow(0.5) * sample;
    }
    const torch::Tensor sample_coeff = (alpha_prod_prev / alpha_prod).pow(0.5);
    const torch::Tensor denominator =
        alpha_prod * beta_prod_prev.pow(0.5) + (alpha_prod * beta_prod * alpha_prod_prev).pow(0.5);
    return sample_coeff * sample - (alpha_prod_prev - alpha_prod) * output / denominator;
  }

  // The Adams-Bashforth combination of the kept outputs (order 1 to 4), written as diffusers
  // writes it: its roundings are diffusers'.
  torch::Tensor adams_bashforth() const {
    const auto e = [&](size_t k) { return outputs_[outputs_.size() - 1 - k]; };  // e(0): the newest
    switch (outputs_.size()) {
      case 1:
        return e(0);
      case 2:
        return (3 * e(0) - e(1)) / 2;
      case 3:
        return (23 * e(0) - 16 * e(1) + 5 * e(2)) / 12;
      default:
        return (1.0 / 24) * (55 * e(0) - 59 * e(1) + 37 * e(2) - 9 * e(3));
    }
  }

  static constexpr size_t kOrder = 4;
  int64_t step_ratio_;
  std::deque<torch::Tensor> outputs_;  // model outputs kept for the multistep, oldest first
  torch::Tensor first_sample_;         // the sample before the first step, until it is redone
};

}  // namespace

std::unique_ptr<Scheduler> make_pndm_scheduler(const NoiseSchedule& schedule, int steps) {
  return std::make_unique<PndmScheduler>(schedule, steps);
}

}  // namespace sdinterp::detail
