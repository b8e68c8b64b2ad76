// A loaded model bundle: manifest, tokenizer and the TorchScript modules, on one device, with the
// UNet engine resolved at load. The bundle is read-only after load: per-run state (the schedulers'
// history, the count of UNet calls) lives in the sampler; process-wide LibTorch settings are made
// by the caller (configure_torch), not here.
#pragma once

#include <torch/types.h>

#include <memory>
#include <optional>
#include <string>

#include "sdinterp/bundle_tokenizer.h"
#include "sdinterp/config.h"
#include "sdinterp/manifest.h"
#include "sdinterp/tokenizer.h"

namespace sdinterp {

// The process-wide LibTorch settings a bundle made as `manifest` says needs, made once by the
// runtime before loading it: on CUDA, TorchScript's graph executor unoptimised (no per-shape
// recompilation), for float32 bundles no TF32 (frames as diffusers' float32 ones), and cuDNN's
// algorithm timing as SDINTERP_CUDNN_BENCHMARK says (off unless 1), and the attention kernel
// SDINTERP_SDPA_FIRST names tried first. ConfigError for a value those variables do not take, on
// any device.
void configure_torch(const Manifest& manifest);

class Bundle {
 public:
  // Loads DIR/model.json, the tokenizer and the modules on `device` (auto: the device the bundle
  // was traced for), and the AOTInductor package when `engine` may use it (kCompiled, kAuto).
  // Throws ModelError for a missing or corrupt file, or a bundle traced for another device than
  // asked (with how to re-export); a package that cannot be used leaves its reason in
  // compiled_unet_problem().
  static Bundle load(const std::string& dir, const DeviceChoice& device = {}, UnetEngine engine = UnetEngine::kAuto);
  // The same with DIR/model.json already read (load_manifest(dir)).
  static Bundle load(const std::string& dir, Manifest manifest, const DeviceChoice& device, UnetEngine engine);
  Bundle(Bundle&&) noexcept;
  Bundle& operator=(Bundle&&) noexcept;
  ~Bundle();

  const Manifest& manifest() const { return manifest_; }
  const ClipTokenizer& tokenizer() const { return *tokenizer_; }
  const std::string& dir() const { return dir_; }
  torch::Device device() const { return device_; }
  UnetEngine engine() const { return engine_; }

  // ids: int64 [B, max_length] -> float32 [B, max_length, hidden] on the bundle's device. The
  // results for the last few batches of ids are kept: the same batch again (a later job with the
  // same prompts and negatives) returns them without running the encoder. The tensor returned is
  // shared with later calls: callers must not change it in place.
  torch::Tensor encode_text(const torch::Tensor& ids) const;
  // How many encode_text calls were answered from those kept results.
  int64_t text_encoder_cache_hits() const;
  // Which module ran a UNet call or a decode, tallied by the caller (the sampler, the decode loop).
  struct ModuleCalls {
    int64_t compiled = 0;
    int64_t torchscript = 0;
  };
  // sample [B, C, h, w], timestep: one value for all B, context [B, 77, hidden]; float32 in and
  // out, cast to the bundle's dtype around the call. The engine picks the module (uses_compiled);
  // the call is counted in `*calls` when given.
  torch::Tensor predict_noise(const torch::Tensor& sample, double timestep, const torch::Tensor& context,
                              ModuleCalls* calls = nullptr) const;
  // The AOTInductor package: loaded (true), or why not ("" when the bundle has none or the engine
  // does not load it).
  bool has_compiled_unet() const;
  const std::string& compiled_unet_problem() const { return compiled_problem_; }
  // The same for the VAE decoder's package (export_bundle.py --aoti-vae). Never required: a decode
  // it cannot take goes to the TorchScript decoder.
  bool has_compiled_vae_decoder() const;
  const std::string& compiled_vae_decoder_problem() const { return compiled_decoder_problem_; }
  // Where the load's time went, in seconds: each TorchScript module (read, unpickled and, on CUDA,
  // copied to the device; the three load at once, so their sum can exceed `total`) and of that the
  // part spent on its weights file (mapped, and on CUDA copied to the device: `weights`), the
  // compiled packages, and the whole of Bundle::load. On CUDA also: from the load's start until
  // the device's context was there (`cuda_context`; the executable may have started making it
  // before, sdinterp/cuda_start.h) and the CUDA libraries' first use after it (`cuda_warm_up`).
  struct LoadSeconds {
    double text_encoder = 0, unet = 0, vae_decoder = 0, compiled_unet = 0, compiled_vae_decoder = 0, total = 0;
    struct Weights {
      double text_encoder = 0, unet = 0, vae_decoder = 0;
    } weights;
    double cuda_context = 0, cuda_warm_up = 0;
  };
  const LoadSeconds& load_seconds() const { return load_seconds_; }
  // Throws ModelError when the engine is kCompiled and the package is missing, not loaded, or does
  // not accept latents of this size (then no call of the run could use it).
  void check_engine(int64_t latent_h, int64_t latent_w) const;
  // Whether a call at UNet batch `batch` uses the package.
  bool uses_compiled(int64_t batch, int64_t latent_h, int64_t latent_w) const;
  // images [B, 3, H, W] in [-1, 1] -> latents [B, C, H/8, W/8]: the VAE encoder's mean times the
  // scaling factor (deterministic, as diffusers' img2img given latents). The encoder is loaded on
  // first use (only image-morph needs it; a cache, not a change of what the bundle is); ModelError
  // when the bundle has none.
  torch::Tensor encode_image(const torch::Tensor& images) const;
  // Whether a decode of `batch` latents of this size uses the VAE decoder's package (engine auto
  // or aoti, the package loaded and taking the shape).
  bool decodes_compiled(int64_t batch, int64_t latent_h, int64_t latent_w) const;
  // latents [B, C, h, w] (unscaled, as the sampler leaves them) -> float32 image [B, 3, H, W] in
  // [-1, 1], through the package when decodes_compiled; the call is counted in `*calls` when given.
  torch::Tensor decode(const torch::Tensor& latents, ModuleCalls* calls = nullptr) const;
  // Free and total memory of the bundle's CUDA device in bytes; false on the CPU or when it cannot
  // be read.
  bool device_memory(int64_t& free_bytes, int64_t& total_bytes) const;
  // On CUDA, the most bytes LibTorch's caching allocator had handed out (allocated) and had taken
  // from the device (reserved, the cache included) since the last reset_memory_peaks(); false on
  // the CPU or when they cannot be read.
  struct MemoryPeaks {
    int64_t allocated = -1;
    int64_t reserved = -1;
  };
  void reset_memory_peaks() const;
  bool memory_peaks(MemoryPeaks& peaks) const;

 private:
  Bundle(std::string dir, Manifest manifest, torch::Device device);
  // The TorchScript modules, kept out of this header: torch/script.h is slow to compile.
  struct Modules;

  std::string dir_;
  Manifest manifest_;
  std::optional<ClipTokenizer> tokenizer_;  // set by load, read beside the modules
  torch::Device device_;
  torch::ScalarType dtype_ = torch::kFloat32;
  UnetEngine engine_ = UnetEngine::kAuto;
  std::unique_ptr<Modules> modules_;
  std::string compiled_problem_;
  std::string compiled_decoder_problem_;
  LoadSeconds load_seconds_;
};

// "float32" -> kFloat32 etc.
torch::ScalarType parse_dtype(const std::string& name);

}  // namespace sdinterp
