// A bundle's model.json, parsed into a typed struct. No torch.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "sdinterp/noise_schedule.h"

namespace sdinterp {

struct Manifest {
  int format_version = 1;
  std::string description;
  std::string device = "cpu";     // device the modules were traced for: "cpu" or "cuda"
  std::string dtype = "float32";  // "float32", "float16" or "bfloat16"
  // Attention in the traced graphs: "sdpa" (aten::scaled_dot_product_attention, LibTorch >= 2.0) or
  // "classic" (matmul + softmax, any LibTorch; export_bundle.py --compat). Version 1 bundles: classic.
  std::string attention = "classic";

  struct Tokenizer {
    std::string kind = "clip-bpe";
    std::string vocab;  // relative to the bundle folder
    std::string merges;
    int max_length = 77;
    int64_t bos_id = 49406;
    int64_t eos_id = 49407;
    int64_t pad_id = 49407;
  } tokenizer;

  struct TextEncoder {
    std::string file;
    int hidden_size = 0;
  } text_encoder;

  // An AOTInductor package of a module (export_bundle.py --aoti: the UNet; --aoti-vae: the VAE
  // decoder), optional: it holds the compiled kernels only and runs with the TorchScript module's
  // weights. It takes batches of batch_min..batch_max and latents whose height and width are
  // multiples of latent_multiple up to latent_max; other calls go to the TorchScript module.
  struct Compiled {
    std::string file;  // "" when the bundle has none
    int batch_min = 2;
    int batch_max = 63;
    int latent_multiple = 8;
    int latent_max = 128;
    int threads = 0;                 // CPU packages: the thread count compiled into their kernels; 0: not recorded
    std::string weights_fnv1a64;     // weights_signature() of the weights it was compiled against; "": not recorded
    std::string tuning = "default";  // the exporter's --aoti-tuning (the settings it was compiled with)
    bool accepts(int64_t batch, int64_t latent_h, int64_t latent_w) const {
      auto size_ok = [this](int64_t s) { return s > 0 && s % latent_multiple == 0 && s <= latent_max; };
      return !file.empty() && batch >= batch_min && batch <= batch_max && size_ok(latent_h) && size_ok(latent_w);
    }
    bool accepts_size(int64_t latent_h, int64_t latent_w) const { return accepts(batch_max, latent_h, latent_w); }
    // What it takes, in words, for a VAE scale factor: "batch 2..63, images in steps of 64 px up to
    // 1024 px", or for a package compiled for one shape (export_bundle.py --aoti-static) "batch 60
    // only, images of 512x512 px only".
    std::string takes(int scale_factor) const;
  };

  struct Unet {
    std::string file;
    int in_channels = 4;
    int sample_size = 64;
    int cross_attention_dim = 0;
    // The TorchScript UNet takes latents whose sides are multiples of this (1: every size).
    // export_bundle.py traces at a size that gives 1 and records it; a version 1 bundle records
    // nothing (0 here) and Bundle::load derives it from the module's upsamplers.
    int latent_multiple = 1;
    Compiled compiled;  // unet.pt2
  } unet;

  struct Vae {
    std::string decoder;
    std::string encoder;  // optional: "" when absent
    int latent_channels = 4;
    int scale_factor = 8;
    double scaling_factor = 0.18215;
    Compiled compiled;  // the decoder's: vae_decoder.pt2
  } vae;

  NoiseSchedule noise_schedule;

  // Where the weights came from (format_version 2; empty strings in version 1 bundles).
  struct Source {
    std::string model;           // what export_bundle.py was given: hub id, folder or checkpoint file
    std::string kind;            // "hub", "folder" or "single-file"
    std::string revision;        // hub commit; "" when unknown
    std::string weights_sha256;  // sha256 of the weight file (several files: of their list of hashes)
  } source;

  nlohmann::json raw;  // the file as read, for run metadata

  // Format version 3 (scripts/bundle_weights.py): each module file X.pt holds the TorchScript code
  // with placeholders for its weights, which are in weights_file(X.pt) = X.safetensors beside it.
  bool weights_beside() const { return format_version >= 3; }
  // The TorchScript module files: text encoder, UNet, VAE decoder, and the VAE encoder when there is one.
  std::vector<std::string> module_files() const;
  // The files a bundle consists of (relative to its folder), less the optional compiled packages:
  // model.json, the tokenizer's, the module files and, in format version 3, their weights files.
  std::vector<std::string> files() const;

  // The compiled packages the bundle names, by the module they compile ("unet", "vae_decoder").
  struct CompiledModule {
    const char* module;
    const Compiled* record;
  };
  std::vector<CompiledModule> compiled_modules() const;

  // The bundle's native image size: sample_size * scale_factor.
  int native_size() const { return unet.sample_size * vae.scale_factor; }

  // The scripts/export_bundle.py command line that makes this bundle's model for `device` and
  // `dtype` (MODEL when the source is unknown; --compat kept for classic-attention exports).
  std::string export_command(const std::string& device, const std::string& dtype) const;
};

// Newest manifest format this build reads. Version 3 keeps each module's weights beside it (see
// weights_beside); version 2 adds "attention" and "source"; version 1 is still read.
constexpr int kManifestFormatVersion = 3;

// The weights file of a module file in a version 3 bundle: "unet.pt" -> "unet.safetensors".
std::string weights_file(const std::string& module_file);

// Parses model.json text; `source` names the file in error messages. Throws ModelError with one
// line naming the file and the field for a missing or mistyped field.
Manifest parse_manifest(std::string_view text, const std::string& source);
// Reads DIR/model.json. Throws ModelError if the folder or file is missing or unreadable.
Manifest load_manifest(const std::string& bundle_dir);

}  // namespace sdinterp
