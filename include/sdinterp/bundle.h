// A loaded model bundle: manifest, tokenizer and the TorchScript modules, on one device.
// The bundle is read-only after load; per-run state lives in the sampler and schedulers.
#pragma once

#include <torch/types.h>

#include <memory>
#include <string>

#include "sdinterp/bundle_tokenizer.h"
#include "sdinterp/manifest.h"
#include "sdinterp/tokenizer.h"

namespace sdinterp {

// Which UNet runs the denoising calls. kAuto: the bundle's AOTInductor package for the calls it
// accepts (batch and latent size), TorchScript for the rest and when the bundle has none or it
// cannot be loaded here; kCompiled: the same, but a package that is missing or cannot be loaded is
// an error; kTorchScript: never the package.
enum class UnetEngine { kAuto, kTorchScript, kCompiled };
UnetEngine parse_unet_engine(const std::string& name);  // "auto", "torchscript", "aoti"; ConfigError otherwise

class Bundle {
 public:
  // Loads DIR/model.json, the tokenizer and the modules. `device` is "auto" (the device the
  // bundle was traced for), "cpu", "cuda" or "cuda:N". Throws ModelError for a missing or
  // corrupt file, or a bundle traced for another device than asked (with how to re-export).
  static Bundle load(const std::string& dir, const std::string& device = "auto");
  // The same with DIR/model.json already read (load_manifest(dir)).
  static Bundle load(const std::string& dir, Manifest manifest, const std::string& device);
  Bundle(Bundle&&) noexcept;
  Bundle& operator=(Bundle&&) noexcept;
  ~Bundle();

  const Manifest& manifest() const { return manifest_; }
  const ClipTokenizer& tokenizer() const { return tokenizer_; }
  const std::string& dir() const { return dir_; }
  torch::Device device() const { return device_; }

  // ids: int64 [B, max_length] -> float32 [B, max_length, hidden] on the bundle's device.
  torch::Tensor encode_text(const torch::Tensor& ids);
  // sample [B, C, h, w], timestep: one value for all B, context [B, 77, hidden]; float32 in and
  // out, cast to the bundle's dtype around the call.
  // `engine` picks the module (above); counted in unet_calls().
  torch::Tensor predict_noise(const torch::Tensor& sample, double timestep, const torch::Tensor& context,
                              UnetEngine engine = UnetEngine::kAuto);
  // Loads the AOTInductor package when `engine` may use it (kCompiled; kAuto on the CPU), once;
  // a package that cannot be used leaves its reason in compiled_unet_problem().
  void prepare_engine(UnetEngine engine);
  // The AOTInductor package: loaded (true), or why not ("" when the bundle has none or it was not
  // asked for).
  bool has_compiled_unet() const;
  const std::string& compiled_unet_problem() const { return compiled_problem_; }
  // Throws ModelError when `engine` is kCompiled and the package is missing, not loaded, or does
  // not accept latents of this size (then no call of the run could use it).
  void check_engine(UnetEngine engine, int64_t latent_h, int64_t latent_w) const;
  // Whether calls of this run at UNet batch `batch` would use the package.
  bool uses_compiled(UnetEngine engine, int64_t batch, int64_t latent_h, int64_t latent_w) const;
  struct UnetCalls {
    int64_t compiled = 0;
    int64_t torchscript = 0;
  };
  UnetCalls unet_calls() const { return calls_; }
  // images [B, 3, H, W] in [-1, 1] -> latents [B, C, H/8, W/8]: the VAE encoder's mean times the
  // scaling factor (deterministic, as diffusers' img2img given latents). The encoder is loaded on
  // first use; ModelError when the bundle has none.
  torch::Tensor encode_image(const torch::Tensor& images);
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
  std::string compiled_problem_;
  bool compiled_attempted_ = false;
  UnetCalls calls_;
};

// "float32" -> kFloat32 etc.
torch::ScalarType parse_dtype(const std::string& name);

}  // namespace sdinterp
