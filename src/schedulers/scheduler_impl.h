// Pieces the scheduler implementations share: the training schedule in double precision,
// numpy-compatible helpers that reproduce diffusers' set_timesteps, and the call-order check.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "sdinterp/linspace.h"
#include "sdinterp/noise_schedule.h"
#include "sdinterp/schedulers.h"

namespace sdinterp::detail {

// The training noise schedule, derived once from the betas as diffusers derives it: float32 values
// (held as doubles), so that the sigmas interpolated from them round to diffusers' own.
struct TrainingSchedule {
  explicit TrainingSchedule(const NoiseSchedule& schedule);

  int num_train_timesteps;
  PredictionType prediction_type;
  std::vector<double> alphas_cumprod;  // indexed by training timestep
  // sqrt((1 - alphas_cumprod) / alphas_cumprod): the noise level of training timestep t in the
  // "x = x0 + sigma * noise" parametrisation; ascending in t.
  std::vector<double> sigmas;
  std::vector<double> log_sigmas;  // of the sigmas, rounded to float32 (diffusers takes numpy's float32 log)
};

// The cumulative products of the alphas as diffusers computes them, in float32 (betas from a float32
// linspace, torch.cumprod). Measured against diffusers' DDIMInverseScheduler: 15 inversion steps
// drift 1.2e-4 relative with double-precision levels, 1e-5 with these.
std::vector<double> float32_alphas_cumprod(const NoiseSchedule& schedule);

// A value rounded to float32, as diffusers stores its timesteps and sigmas.
double to_float32(double value);
// A table value as diffusers holds it when it steps: a float32 scalar tensor on the CPU, so that
// every step's arithmetic rounds as diffusers' does.
torch::Tensor float32_scalar(double value);
// (sigma^2 + 1) ** 0.5 of a float32 scalar sigma, in diffusers' operations: the scale between the
// "x = x0 + sigma * noise" levels and the variance-preserving ones.
torch::Tensor vp_scale(const torch::Tensor& sigma);
// numpy.interp(t, arange(len(values)), values).
double interp_at(const std::vector<double>& values, double t);
// Karras et al. (2022) noise levels, rho = 7, from sigma_max down to sigma_min.
std::vector<double> karras_sigmas(double sigma_min, double sigma_max, int steps);
// The (fractional) training timestep whose sigma is `sigma`: linear in log sigma between the
// two neighbouring training steps, clamped to the schedule's range (diffusers' _sigma_to_t).
double sigma_to_t(double sigma, const std::vector<double>& log_sigmas);
// "leading" spacing: steps_offset + k * (num_train_timesteps / steps), k = steps - 1 ... 0.
std::vector<int64_t> leading_timesteps(int num_train_timesteps, int steps, int steps_offset);

// Enforces the one-run contract of Scheduler: step(i) in order 0, 1, 2, ... (from start_at's call).
class SchedulerBase : public Scheduler {
 public:
  void start_at(size_t first) override;

 protected:
  // Calls made in this run so far (multistep methods keep no history from before the start).
  size_t calls_made() const { return next_call_ - first_call_; }
  // Throws std::out_of_range unless call i exists.
  void check_index(size_t i) const;
  // Throws std::logic_error unless call i is the next one of this run.
  void expect_call(size_t i) const;
  // Records that call i succeeded; the next expected call is i + 1.
  void finish_call() { ++next_call_; }

 private:
  size_t first_call_ = 0;
  size_t next_call_ = 0;
};

// Schedulers whose model input is the sample itself, started from unit noise (DDIM, PNDM,
// DPM-Solver: the variance-preserving parametrisation).
class UnscaledInputScheduler : public SchedulerBase {
 public:
  double init_noise_sigma() const override { return 1.0; }
  torch::Tensor scale_model_input(const torch::Tensor& sample, size_t i) const override {
    check_index(i);
    return sample;
  }
};

// The variance-preserving add_noise of DDIM and PNDM: sqrt(alpha_t) x + sqrt(1 - alpha_t) noise at
// the training timestep of call i.
class AlphaScheduler : public UnscaledInputScheduler {
 public:
  explicit AlphaScheduler(const NoiseSchedule& schedule) : train_(schedule) {}
  torch::Tensor add_noise(const torch::Tensor& original, const torch::Tensor& noise, size_t i) const override;

 protected:
  // alphas_cumprod at training step t (below 0: at 0, as set_alpha_to_one = false has it) as a
  // float32 scalar tensor on the CPU, as diffusers keeps it.
  torch::Tensor alpha(int64_t t) const;

  TrainingSchedule train_;
};

// Schedulers in the "x = x0 + sigma * noise" parametrisation (LMS, Euler): sigmas from
// diffusers' linspace spacing or Karras levels, float timesteps, input scaled by
// 1 / sqrt(sigma^2 + 1).
class SigmaScheduler : public SchedulerBase {
 public:
  SigmaScheduler(const NoiseSchedule& schedule, int steps, bool karras);
  double init_noise_sigma() const override { return init_noise_sigma_; }
  torch::Tensor scale_model_input(const torch::Tensor& sample, size_t i) const override;
  torch::Tensor add_noise(const torch::Tensor& original, const torch::Tensor& noise, size_t i) const override;

 protected:
  // sigmas()[i] as a float32 scalar tensor on the CPU, as diffusers keeps its sigmas.
  torch::Tensor sigma(size_t i) const;
  // d(sample)/d(sigma) at call i, (sample - predicted x0) / sigma, by diffusers' own tensor
  // operations (not the model output itself: the roundings differ, and they flip 8-bit values).
  torch::Tensor derivative(size_t i, const torch::Tensor& sample, const torch::Tensor& model_output) const;

 private:
  PredictionType prediction_type_;
  double init_noise_sigma_;
};

std::unique_ptr<Scheduler> make_lms_scheduler(const NoiseSchedule& schedule, int steps, bool karras);
std::unique_ptr<Scheduler> make_euler_scheduler(const NoiseSchedule& schedule, int steps, bool karras);
std::unique_ptr<Scheduler> make_ddim_scheduler(const NoiseSchedule& schedule, int steps);
std::unique_ptr<Scheduler> make_pndm_scheduler(const NoiseSchedule& schedule, int steps);
std::unique_ptr<Scheduler> make_dpmpp_2m_scheduler(const NoiseSchedule& schedule, int steps, bool karras);

}  // namespace sdinterp::detail
