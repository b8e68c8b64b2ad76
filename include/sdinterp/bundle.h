// A loaded model bundle: manifest, tokenizer and the TorchScript modules, on one device.
// The bundle is read-only after load; per-run state lives in the sampler and schedulers.
#pragma once

#include <torch/types.h>

#include <memory>
#include <string>

#include "sdinterp/manifest.h"
#include "sdinterp/bundle_tokenizer.h"
#include "sdinterp/tokenizer.h"

namespace sdinterp {

class Bundle {
 public:
  // Loads DIR/model.json, the tokenizer and the modules. `device` is "auto" (the device the
  // bundle was traced for), "cpu", "cuda" or "cuda:N". Throws ModelError for a missing or
  // corrupt file, or a bundle traced for another device than asked (with how to re-export).
  static Bundle load(const std::string& dir, const std::string& device = "auto");
  Bundle(Bundle&&) noexcept;
  Bundle& operator=(Bundle&&) noexcept;
  ~Bundle();

  const Manifest& manifest() const { return manifest_; }
  const ClipTokenizer& tokenizer() const { return tokenizer_; }
  const std::string& dir() const { return dir_; }
  torch::Device device() const { return device_; }
  torch::ScalarType dtype() const { return dtype_; }

  // ids: int64 [B, max_length] -> float32 [B, max_length, hidden] on the bundle's device.
  torch::Tensor encode_text(const torch::Tensor& ids);
  // sample [B, C, h, w], timestep: one value for all B, context [B, 77, hidden]; float32 in and
  // out, cast to the bundle's dtype around the call.
  torch::Tensor predict_noise(const torch::Tensor& sample, double timestep, const torch::Tensor& context);
  // latents [B, C, h, w] (unscaled, as the sampler leaves them) -> float32 image [B, 3, H, W] in [-1, 1].
  torch::Tensor decode(const torch::Tensor& latents);

 private:
  Bundle(std::string dir, Manifest manifest, ClipTokenizer tokenizer, torch::Device device);
  // The TorchScript modules, kept out of this header: torch/script.h is slow to compile.
  struct Modules;

  std::string dir_;
  Manifest manifest_;
  ClipTokenizer tokenizer_;
  torch::Device device_;
  torch::ScalarType dtype_ = torch::kFloat32;
  std::unique_ptr<Modules> modules_;
};

// "float32" -> kFloat32 etc.
torch::ScalarType parse_dtype(const std::string& name);

}  // namespace sdinterp
