#include "sdinterp/sampler.h"

namespace sdinterp {

Sampler::Sampler(Bundle& bundle, SamplerSettings settings) : bundle_(bundle), settings_(settings) {}

size_t Sampler::calls_per_run() const {
  return make_scheduler(settings_.scheduler, bundle_.manifest().noise_schedule, settings_.steps)->num_model_calls();
}

torch::Tensor Sampler::run(const torch::Tensor& noise, const torch::Tensor& positive, const torch::Tensor& negative,
                           const StepCallback& on_step) const {
  c10::InferenceMode guard;
  // A fresh scheduler per run: its history (LMS derivatives, ...) belongs to this chunk only.
  auto scheduler = make_scheduler(settings_.scheduler, bundle_.manifest().noise_schedule, settings_.steps);
  const bool guided = settings_.guidance > 1.0;
  const torch::Device device = bundle_.device();
  // Guidance batches [negative, positive] as diffusers does.
  torch::Tensor context = guided ? torch::cat({negative, positive}).to(device) : positive.to(device);
  torch::Tensor latents = noise.to(device, torch::kFloat32) * scheduler->init_noise_sigma();
  const size_t calls = scheduler->num_model_calls();
  for (size_t i = 0; i < calls; ++i) {
    const double t = scheduler->timesteps()[i];
    torch::Tensor model_in = scheduler->scale_model_input(guided ? torch::cat({latents, latents}) : latents, i);
    torch::Tensor pred = bundle_.predict_noise(model_in, t, context, settings_.engine);
    if (guided) {
      auto halves = pred.chunk(2);
      pred = halves[0] + settings_.guidance * (halves[1] - halves[0]);
    }
    latents = scheduler->step(pred, i, latents);
    if (on_step) on_step(i, calls, latents);
  }
  return latents;
}

}  // namespace sdinterp
