// Diffusion schedulers behind one interface, matching diffusers' numerics.
// A Scheduler object is the state of one run: make a fresh one per run (make_scheduler).
#pragma once

#include <torch/types.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "sdinterp/config.h"
#include "sdinterp/noise_schedule.h"

namespace sdinterp {

// SchedulerKind and its names: sdinterp/config.h.

class Scheduler {
 public:
  virtual ~Scheduler() = default;

  // Timesteps the model is called with, one per call of step(); may be longer than the number
  // of inference steps (PNDM repeats one). Sigmas (len = steps + 1) are empty for DDIM/PNDM.
  const std::vector<double>& timesteps() const { return timesteps_; }
  const std::vector<double>& sigmas() const { return sigmas_; }
  size_t num_model_calls() const { return timesteps_.size(); }
  virtual double init_noise_sigma() const = 0;

  // Input of the model at call i (call i uses timesteps()[i]).
  virtual torch::Tensor scale_model_input(const torch::Tensor& sample, size_t i) const = 0;
  // Advances the run: model_output is the model's prediction at call i. Calls must come in
  // order 0, 1, 2, ... (from start_at's call on): anything else throws std::logic_error (no
  // shared or skipped history).
  virtual torch::Tensor step(const torch::Tensor& model_output, size_t i, const torch::Tensor& sample) = 0;

  // img2img: the run begins at call `first` (diffusers' set_begin_index), before any step; its
  // sample is a clean latent noised to that call's level by add_noise, not init_noise_sigma.
  virtual void start_at(size_t first) = 0;
  // `original` noised with `noise` to the level the model sees at call i (diffusers' add_noise
  // at timesteps()[i]).
  virtual torch::Tensor add_noise(const torch::Tensor& original, const torch::Tensor& noise, size_t i) const = 0;

 protected:
  std::vector<double> timesteps_;
  std::vector<double> sigmas_;
};

// A fresh run of `kind` with `steps` inference steps (diffusers' set_timesteps with the
// notebook's config: timestep spacing and the rest as diffusers' defaults for that class).
std::unique_ptr<Scheduler> make_scheduler(SchedulerKind kind, const NoiseSchedule& schedule, int steps);

// Deterministic DDIM inversion (diffusers' DDIMInverseScheduler configured from the DDIM
// scheduler above: "leading" spacing, steps_offset 1, set_alpha_to_one false): timesteps
// ascending, each step moves a sample from the previous timestep's noise level to its own.
class DdimInversion {
 public:
  DdimInversion(const NoiseSchedule& schedule, int steps);
  // Model calls, lowest noise first: the first `calls` of them reach the level of the DDIM
  // scheduler's call steps - calls.
  const std::vector<double>& timesteps() const { return timesteps_; }
  torch::Tensor step(const torch::Tensor& model_output, size_t i, const torch::Tensor& sample) const;

 private:
  std::vector<double> timesteps_;
  std::vector<double> alphas_cumprod_;
  int64_t step_ratio_;
  PredictionType prediction_type_;
};

}  // namespace sdinterp
