// Batched classifier-free-guided denoising of a chunk of frames.
#pragma once

#include <torch/types.h>

#include <functional>

#include "sdinterp/bundle.h"
#include "sdinterp/schedulers.h"

namespace sdinterp {

// Whether a guidance scale guides: above 1, as diffusers' do_classifier_free_guidance; at 1 or
// less the walk reads no negative conditioning.
inline bool guided(double guidance) { return guidance > 1.0; }

struct SamplerSettings {
  SchedulerKind scheduler = SchedulerKind::kLms;
  int steps = 15;
  double guidance = 8.0;  // <= 1: no guidance, the negative conditioning is not used (as diffusers)
  // img2img: the run starts at this model call (steps - strength_steps) from latents already noised
  // to its level (Scheduler::add_noise), not from unit noise scaled by init_noise_sigma.
  size_t first_call = 0;
  bool noised_start = false;
};

// Called after every model call with the call index (0-based), the number of calls, and the
// latents after that step. Throwing from it (e.g. on interrupt) stops the run.
using StepCallback = std::function<void(size_t call, size_t calls, const torch::Tensor& latents)>;

// The per-run state of sampling with a (read-only) bundle: the settings and the tally of UNet
// calls, by the module that ran them.
class Sampler {
 public:
  Sampler(const Bundle& bundle, SamplerSettings settings);

  // noise [n, C, h, w] (unit variance, as drawn), positive/negative [n, L, hidden].
  // Returns the denoised latents [n, C, h, w], float32 on the bundle's device.
  torch::Tensor run(const torch::Tensor& noise, const torch::Tensor& positive, const torch::Tensor& negative,
                    const StepCallback& on_step = {});

  // Model calls per run (PNDM makes one more than steps; an img2img start makes fewer).
  size_t calls_per_run() const;

  // Clean latents [n, C, h, w] noised to the level of the run's first call with `noise` (one
  // [1, C, h, w] tensor for all, or one each).
  torch::Tensor add_noise(const torch::Tensor& latents, const torch::Tensor& noise) const;

  // Deterministic DDIM inversion of clean latents [n, C, h, w] to the noise level of the run's
  // first call (first_call of a DDIM run), the UNet conditioned on `context` [n, L, hidden]
  // without guidance. `on_step` is called after each of the calls_to_invert() model calls.
  torch::Tensor invert(const torch::Tensor& latents, const torch::Tensor& context, const StepCallback& on_step = {});
  size_t calls_to_invert() const;

  // The UNet calls this sampler's runs and inversions made so far.
  const Bundle::ModuleCalls& unet_calls() const { return calls_; }

 private:
  const Bundle& bundle_;
  SamplerSettings settings_;
  Bundle::ModuleCalls calls_;
};

}  // namespace sdinterp
