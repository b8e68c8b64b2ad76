#include "sdinterp/sampler.h"

namespace sdinterp {

Sampler::Sampler(const Bundle& bundle, SamplerSettings settings) : bundle_(bundle), settings_(settings) {}

size_t Sampler::calls_per_run() const {
  return make_scheduler(settings_.scheduler, bundle_.manifest().noise_schedule, settings_.steps)->num_model_calls() -
         settings_.first_call;
}

torch::Tensor Sampler::add_noise(const torch::Tensor& latents, const torch::Tensor& noise) const {
  c10::InferenceMode guard;
  auto scheduler = make_scheduler(settings_.scheduler, bundle_.manifest().noise_schedule, settings_.steps);
  const torch::Device device = bundle_.device();
  return scheduler->add_noise(latents.to(device, torch::kFloat32), noise.to(device, torch::kFloat32),
                              settings_.first_call);
}

size_t Sampler::calls_to_invert() const { return static_cast<size_t>(settings_.steps) - settings_.first_call; }

torch::Tensor Sampler::invert(const torch::Tensor& latents, const torch::Tensor& context, const StepCallback& on_step) {
  c10::InferenceMode guard;
  const DdimInversion inversion(bundle_.manifest().noise_schedule, settings_.steps);
  const torch::Device device = bundle_.device();
  torch::Tensor x = latents.to(device, torch::kFloat32);
  const torch::Tensor c = context.to(device);
  const size_t calls = calls_to_invert();
  for (size_t i = 0; i < calls; ++i) {
    const torch::Tensor eps = bundle_.predict_noise(x, inversion.timesteps()[i], c, &calls_);
    x = inversion.step(eps, i, x);
    if (on_step) on_step(i, calls, x);
  }
  return x;
}

torch::Tensor Sampler::run(const torch::Tensor& noise, const torch::Tensor& positive, const torch::Tensor& negative,
                           const StepCallback& on_step) {
  c10::InferenceMode guard;
  // A fresh scheduler per run: its history (LMS derivatives, ...) belongs to this chunk only.
  auto scheduler = make_scheduler(settings_.scheduler, bundle_.manifest().noise_schedule, settings_.steps);
  const bool guided = sdinterp::guided(settings_.guidance);
  const torch::Device device = bundle_.device();
  // Guidance batches [negative, positive] as diffusers does.
  torch::Tensor context = guided ? torch::cat({negative, positive}).to(device) : positive.to(device);
  torch::Tensor latents = noise.to(device, torch::kFloat32);
  if (!settings_.noised_start) latents = latents * scheduler->init_noise_sigma();
  if (settings_.first_call > 0) scheduler->start_at(settings_.first_call);
  const size_t calls = scheduler->num_model_calls();
  for (size_t i = settings_.first_call; i < calls; ++i) {
    const double t = scheduler->timesteps()[i];
    torch::Tensor model_in = scheduler->scale_model_input(guided ? torch::cat({latents, latents}) : latents, i);
    torch::Tensor pred = bundle_.predict_noise(model_in, t, context, &calls_);
    if (guided) {
      auto halves = pred.chunk(2);
      pred = halves[0] + settings_.guidance * (halves[1] - halves[0]);
    }
    latents = scheduler->step(pred, i, latents);
    if (on_step) on_step(i - settings_.first_call, calls - settings_.first_call, latents);
  }
  return latents;
}

}  // namespace sdinterp
