// Euler (diffusers' EulerDiscreteScheduler with its defaults: no churn, so deterministic).
#include "schedulers/scheduler_impl.h"

namespace sdinterp::detail {
namespace {

class EulerScheduler final : public SigmaScheduler {
 public:
  using SigmaScheduler::SigmaScheduler;

  torch::Tensor step(const torch::Tensor& model_output, size_t i, const torch::Tensor& sample) override {
    expect_call(i);
    // As diffusers: the step in float32 scalars, the derivative times it added to the sample.
    const torch::Tensor prev = sample + derivative(i, sample, model_output) * (sigma(i + 1) - sigma(i));
    finish_call();
    return prev;
  }
};

}  // namespace

std::unique_ptr<Scheduler> make_euler_scheduler(const NoiseSchedule& schedule, int steps, bool karras) {
  return std::make_unique<EulerScheduler>(schedule, steps, karras);
}

}  // namespace sdinterp::detail
