// `sdinterp info`: versions, devices and a bundle's summary, for CI smoke runs and bug reports.
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "bundle/weights_header.h"
#include "cli/commands.h"
#include "cli/runtime.h"
#include "sdinterp/errors.h"
#include "sdinterp/manifest.h"

namespace sdinterp::cli {
namespace {

struct InfoOptions {
  std::string bundle_dir;
  bool json = false;
};

// The files the manifest names: each present, and each weights file's header whole and within its
// file (what a cut-short copy or a lost file breaks), without loading anything. Throws the
// ModelError a load would (exit 3). {"count", "bytes"} of the files.
nlohmann::json checked_bundle_files(const std::string& dir, const Manifest& m) {
  uint64_t bytes = 0;
  const std::vector<std::string> files = m.files();
  for (const std::string& name : files) {
    const std::string path = (std::filesystem::path(dir) / name).string();
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) throw missing_bundle_file(path);
    bytes += std::filesystem::file_size(path, ec);
  }
  if (m.weights_beside()) {
    for (const std::string& module : m.module_files()) {
      read_weights_header((std::filesystem::path(dir) / weights_file(module)).string());
    }
  }
  return {{"count", files.size()}, {"bytes", bytes}};
}

nlohmann::json bundle_summary(const std::string& dir) {
  const Manifest m = load_manifest(dir);
  const auto& ns = m.noise_schedule;
  nlohmann::json compiled = {{"unet", nullptr}, {"vae_decoder", nullptr}};
  for (const auto& [module, c] : m.compiled_modules()) {
    std::error_code ec;
    compiled[module] = {{"kind", "aoti"},
                        {"file", c->file},
                        {"present", std::filesystem::is_regular_file(std::filesystem::path(dir) / c->file, ec)},
                        {"batch_min", c->batch_min},
                        {"batch_max", c->batch_max},
                        {"latent_multiple", c->latent_multiple},
                        {"latent_max", c->latent_max},
                        {"tuning", c->tuning},
                        {"takes", c->takes(m.vae.scale_factor)}};
  }
  return {{"path", dir},
          {"files", checked_bundle_files(dir, m)},
          {"description", m.description},
          {"format_version", m.format_version},
          {"device", m.device},
          {"dtype", m.dtype},
          {"native_size", m.native_size()},
          {"latent_channels", m.vae.latent_channels},
          {"vae_scale_factor", m.vae.scale_factor},
          {"text_hidden_size", m.text_encoder.hidden_size},
          {"pad_id", m.tokenizer.pad_id},
          {"compiled_unet", compiled["unet"]},
          {"compiled_vae_decoder", compiled["vae_decoder"]},
          {"schedule",
           {{"num_train_timesteps", ns.num_train_timesteps},
            {"beta_start", ns.beta_start},
            {"beta_end", ns.beta_end},
            {"beta_schedule", ns.beta_schedule},
            {"prediction_type", ns.prediction_type == PredictionType::kEpsilon ? "epsilon" : "v_prediction"}}}};
}

// ", NAME=value" for each variable of a devices() "env" object that the environment sets.
void print_set_variables(const nlohmann::json& env) {
  for (const auto& [name, value] : env.items()) {
    if (!value.is_null()) std::cout << ", " << name << "=" << value.get<std::string>();
  }
}

int run_info(const InfoOptions& o) {
  nlohmann::json info = {{"sdinterp", SDINTERP_VERSION}};
  info.update(runtime().devices());
  if (!o.bundle_dir.empty()) info["bundle"] = bundle_summary(o.bundle_dir);
  if (o.json) {
    std::cout << info.dump(2) << "\n";
    return 0;
  }
  std::cout << "sdinterp " << SDINTERP_VERSION << ", LibTorch " << info["libtorch"].get<std::string>() << "\n";
  std::cout << "CPU: " << info["cpu_threads"] << " threads";
  print_set_variables(info["openmp_env"]);
  std::cout << "\n";
  const bool cuda = info["cuda_available"].get<bool>();
  std::cout << "CUDA: " << (cuda ? "available" : "not available");
  if (cuda) {
    const auto& allocator = info["cuda_allocator"];
    std::cout << ", memory in " << (allocator["expandable_segments"].get<bool>() ? "expandable" : "fixed")
              << " segments";
    print_set_variables(allocator["env"]);
  }
  std::cout << "\n";
  for (const auto& d : info["cuda_devices"]) {
    if (d.contains("error")) {
      std::cout << "  cuda:" << d["index"] << ": " << d["error"].get<std::string>() << "\n";
      continue;
    }
    std::printf("  cuda:%d: %s (sm %s), %.1f of %.1f GiB free\n", d["index"].get<int>(),
                d["name"].get<std::string>().c_str(), d["compute_capability"].get<std::string>().c_str(),
                d["free_gib"].get<double>(), d["total_gib"].get<double>());
    std::fflush(stdout);
  }
  if (info.contains("bundle")) {
    const auto& b = info["bundle"];
    const auto& s = b["schedule"];
    std::cout << "bundle " << b["path"].get<std::string>() << ": " << b["device"].get<std::string>() << "/"
              << b["dtype"].get<std::string>() << ", native " << b["native_size"] << "x" << b["native_size"]
              << ", text hidden " << b["text_hidden_size"] << ", " << s["prediction_type"].get<std::string>() << ", "
              << s["beta_schedule"].get<std::string>() << " betas " << s["beta_start"] << ".." << s["beta_end"]
              << " over " << s["num_train_timesteps"] << " steps\n";
    std::printf("  files: %d named by model.json, %.1f MiB, all present%s\n", b["files"]["count"].get<int>(),
                static_cast<double>(b["files"]["bytes"].get<uint64_t>()) / (1 << 20),
                b["format_version"].get<int>() >= 3 ? ", weights headers whole" : "");
    std::fflush(stdout);
    for (const auto& [key, what] :
         {std::pair{"compiled_unet", "UNet"}, std::pair{"compiled_vae_decoder", "VAE decoder"}}) {
      if (b[key].is_null()) continue;
      const auto& c = b[key];
      std::cout << "  compiled " << what << " (AOTInductor) " << c["file"].get<std::string>() << ": ";
      if (c["present"].get<bool>()) {
        std::cout << c["takes"].get<std::string>() << ", compile settings " << c["tuning"].get<std::string>() << "\n";
      } else {
        std::cout << "missing (model.json names it; the TorchScript " << what << " is used)\n";
      }
    }
  }
  return 0;
}

}  // namespace

void add_info_command(CLI::App& app, int& status) {
  auto o = std::make_shared<InfoOptions>();
  CLI::App* sub = app.add_subcommand("info", "Versions, CUDA devices with free memory, and a bundle's summary");
  sub->add_option("--bundle", o->bundle_dir,
                  "Model bundle folder to summarise and check (its files present, its weights files' headers whole)");
  sub->add_flag("--json", o->json, "Print JSON");
  sub->callback([o, &status] { status = run_info(*o); });
}

}  // namespace sdinterp::cli
