// The notebook's four walks on tiny-sd against diffusers' frames (tests/golden, see its README).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <optional>
#include <set>

#include "bundle/weights_file.h"
#include "io/png_io.h"
#include "sdinterp/bundle.h"
#include "sdinterp/config.h"
#include "sdinterp/errors.h"
#include "sdinterp/manifest.h"
#include "sdinterp/pipeline.h"
#include "sdinterp/sampler.h"
#include "test_support.h"

namespace sdinterp {
namespace {

using nlohmann::json;

struct GoldenCase {
  json spec;
  std::string name() const { return spec["name"]; }
};

std::vector<GoldenCase> golden_cases() {
  json all = json::parse(test::read_text(test::golden("pipeline_cases.json")));
  std::vector<GoldenCase> out;
  for (const auto& c : all["cases"]) out.push_back({c});
  return out;
}

RunConfig config_for(const GoldenCase& gc) {
  const json& c = gc.spec;
  RunConfig cfg;
  cfg.bundle_dir = test::tiny_sd();
  cfg.mode = parse_walk_mode(c["mode"]);
  cfg.prompts = c["prompts"].get<std::vector<std::string>>();
  cfg.negatives = c["negative_prompts"].get<std::vector<std::string>>();
  cfg.seed = c["seed"].get<uint64_t>();
  cfg.frames = c["frames"];
  cfg.steps = c["steps"];
  cfg.guidance = c["guidance_scale"];
  cfg.height = c["height"];
  cfg.width = c["width"];
  if (c.contains("step_size")) cfg.step_size = c["step_size"];
  cfg.output = "unused.gif";
  return cfg;
}

Bundle& tiny_bundle() {
  static Bundle bundle = Bundle::load(test::tiny_sd(), parse_device("cpu"));
  return bundle;
}

torch::Tensor golden_tensor(const std::string& file, const json& shape) {
  std::vector<float> data = test::read_f32(test::golden(file));
  std::vector<int64_t> dims = shape.get<std::vector<int64_t>>();
  return torch::from_blob(data.data(), dims, torch::kFloat32).clone();
}

// The float frames [N, H, W, 3] in [0, 1] that the pipeline's stages give for a case.
torch::Tensor float_frames(const RunConfig& cfg, int batch) {
  Bundle& bundle = tiny_bundle();
  TextConditioning text = encode_prompts(bundle, cfg.prompts, cfg.negatives);
  InterpolationPlan plan = make_plan(bundle, cfg, text);
  Sampler sampler(bundle, {cfg.scheduler, cfg.steps, cfg.guidance});
  std::vector<torch::Tensor> frames;
  for (int64_t first = 0; first < plan.size(); first += batch) {
    FrameChunk chunk = plan.chunk(first, std::min<int64_t>(batch, plan.size() - first));
    torch::Tensor image = bundle.decode(sampler.run(chunk.latents, chunk.positive, chunk.negative));
    frames.push_back((image / 2 + 0.5).clamp(0, 1).permute({0, 2, 3, 1}));
  }
  return torch::cat(frames);
}

// Compares 8-bit frames with round(255 * reference): every value within 1, >= 99.9% equal.
void expect_close_8bit(const std::vector<uint8_t>& got, const torch::Tensor& reference, const std::string& what) {
  torch::Tensor ref = (reference * 255).round().to(torch::kInt32).flatten();
  ASSERT_EQ(static_cast<int64_t>(got.size()), ref.numel()) << what;
  torch::Tensor ours =
      torch::from_blob(const_cast<uint8_t*>(got.data()), {ref.numel()}, torch::kUInt8).to(torch::kInt32);
  torch::Tensor diff = (ours - ref).abs();
  const int max_diff = diff.max().item<int>();
  const double equal = (diff == 0).to(torch::kFloat64).mean().item<double>();
  EXPECT_LE(max_diff, 1) << what;
  EXPECT_GE(equal, 0.999) << what << ": only " << equal * 100 << "% of values equal";
}

std::vector<uint8_t> read_png_frames(const std::string& dir, int64_t count) {
  std::vector<uint8_t> all;
  for (int64_t i = 0; i < count; ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "frame_%04lld.png", static_cast<long long>(i));
    Frame f = io::read_image_rgb(dir + "/" + name);
    all.insert(all.end(), f.rgb.begin(), f.rgb.end());
  }
  EXPECT_FALSE(std::filesystem::exists(dir + "/frame_" + std::to_string(10000 + count).substr(1) + ".png"))
      << "more frames than expected";
  return all;
}

TEST(GoldenPipeline, LatentsFromTheSeedEqualPyTorchs) {
  for (const GoldenCase& gc : golden_cases()) {
    torch::Tensor golden = golden_tensor(gc.spec["latents_file"], gc.spec["latents_shape"]);
    RunConfig cfg = config_for(gc);
    torch::Tensor ours = draw_latents(*cfg.seed, golden.sizes());
    EXPECT_TRUE(torch::equal(ours, golden)) << gc.name();
    // The plan draws the same numbers whatever shape the notebook used (circular's [2, 1, C, h, w]).
    InterpolationPlan plan = make_plan(tiny_bundle(), cfg, encode_prompts(tiny_bundle(), cfg.prompts, cfg.negatives));
    EXPECT_TRUE(torch::equal(plan.latent_sources().flatten(), golden.flatten())) << gc.name();
  }
}

TEST(GoldenPipeline, TextEmbeddingsMatch) {
  torch::Tensor golden = golden_tensor("frames/text_embeddings_cat_and_empty.f32", json::array({2, 77, 32}));
  TextConditioning text = encode_prompts(tiny_bundle(), {"a photo of a cat"}, {""});
  torch::Tensor ours = torch::cat({text.positive, text.negative});
  EXPECT_LE((ours - golden).abs().max().item<double>(), 1e-5);
}

TEST(GoldenPipeline, LmsTrajectoryOfEx2FirstFrame) {
  GoldenCase gc = golden_cases()[1];
  ASSERT_EQ(gc.name(), "ex2_slerp_latent");
  RunConfig cfg = config_for(gc);
  torch::Tensor golden = golden_tensor("frames/ex2_frame0_latents_per_step.f32", json::array({15, 1, 4, 8, 12}));
  Bundle& bundle = tiny_bundle();
  InterpolationPlan plan = make_plan(bundle, cfg, encode_prompts(bundle, cfg.prompts, cfg.negatives));
  FrameChunk chunk = plan.chunk(0, 1);
  Sampler sampler(bundle, {SchedulerKind::kLms, cfg.steps, cfg.guidance});
  std::vector<torch::Tensor> steps;
  sampler.run(chunk.latents, chunk.positive, chunk.negative,
              [&](size_t, size_t, const torch::Tensor& latents) { steps.push_back(latents.clone()); });
  ASSERT_EQ(steps.size(), 15u);
  for (size_t i = 0; i < steps.size(); ++i) {
    const double scale = std::max(1.0, golden[i].abs().max().item<double>());
    EXPECT_LE((steps[i] - golden[i]).abs().max().item<double>(), 1e-4 * scale) << "step " << i;
  }
}

TEST(GoldenPipeline, FloatFramesMatchAtTwoBatchSizes) {
  for (const GoldenCase& gc : golden_cases()) {
    RunConfig cfg = config_for(gc);
    torch::Tensor golden = golden_tensor(gc.spec["frames_file"], gc.spec["frames_shape"]);
    std::vector<torch::Tensor> per_batch;
    for (int batch : {1, static_cast<int>(golden.size(0))}) {
      torch::Tensor ours = float_frames(cfg, batch);
      ASSERT_EQ(ours.sizes(), golden.sizes()) << gc.name();
      EXPECT_LE((ours - golden).abs().max().item<double>(), 1e-4) << gc.name() << " batch " << batch;
      per_batch.push_back(ours);
    }
    EXPECT_LE((per_batch[0] - per_batch[1]).abs().max().item<double>(), 1e-5)
        << gc.name() << ": batching changed a frame";
  }
}

// The generate command's own code path: flags -> PNG files, compared with the golden frames.
TEST(GoldenPipeline, GenerateCommandPngFramesMatchAtTwoBatchSizes) {
  for (const GoldenCase& gc : golden_cases()) {
    const json& c = gc.spec;
    torch::Tensor golden = golden_tensor(c["frames_file"], c["frames_shape"]);
    std::string args = " generate --bundle " + test::quote(test::tiny_sd()) + " --mode " + c["mode"].get<std::string>();
    for (const auto& p : c["prompts"]) args += " --prompt " + test::quote(p);
    for (const auto& n : c["negative_prompts"]) args += " --negative " + test::quote(n);
    args +=
        " --seed " + std::to_string(c["seed"].get<uint64_t>()) + " --frames " + std::to_string(c["frames"].get<int>());
    args += " --steps " + std::to_string(c["steps"].get<int>()) + " --guidance " +
            std::to_string(c["guidance_scale"].get<double>());
    args += " --height " + std::to_string(c["height"].get<int>()) + " --width " + std::to_string(c["width"].get<int>());
    if (c.contains("step_size")) args += " --step-size " + std::to_string(c["step_size"].get<double>());
    std::vector<std::vector<uint8_t>> runs;
    for (int batch : {1, static_cast<int>(golden.size(0))}) {
      test::TempDir dir;
      auto r = test::run_command(test::quote(test::binary()) + args + " --batch " + std::to_string(batch) +
                                 " --png-dir " + test::quote(dir / "frames"));
      ASSERT_EQ(r.status, 0) << r.output;
      runs.push_back(read_png_frames(dir / "frames", golden.size(0)));
      expect_close_8bit(runs.back(), golden, gc.name() + " batch " + std::to_string(batch));
    }
    // Batching does not change a frame beyond float rounding: CPU kernels sum in another order
    // at another batch size, which can flip the rounding of a rare 8-bit value.
    ASSERT_EQ(runs[0].size(), runs[1].size());
    size_t differing = 0;
    for (size_t i = 0; i < runs[0].size(); ++i) {
      EXPECT_LE(std::abs(runs[0][i] - runs[1][i]), 1) << gc.name() << " value " << i;
      differing += runs[0][i] != runs[1][i];
    }
    EXPECT_LE(static_cast<double>(differing) / static_cast<double>(runs[0].size()), 1e-3)
        << gc.name() << ": " << differing << " of " << runs[0].size() << " values differ between batch sizes";
    std::cout << gc.name() << ": " << differing << " of " << runs[0].size()
              << " 8-bit values differ between --batch 1 and --batch " << golden.size(0) << "\n";
  }
}

TEST(GoldenPipeline, GoldenComparisonCanFail) {
  // A different seed must not pass the 8-bit comparison: the check has teeth.
  GoldenCase gc = golden_cases()[3];
  RunConfig cfg = config_for(gc);
  torch::Tensor golden = golden_tensor(gc.spec["frames_file"], gc.spec["frames_shape"]);
  cfg.seed = *cfg.seed + 1;
  torch::Tensor ours = float_frames(cfg, 6);
  EXPECT_GT((ours - golden).abs().max().item<double>(), 0.1);
}

TEST(Bundle, RepeatedTextsSkipTheEncoderWithTheSameResult) {
  // A fresh bundle: its kept encoder results start empty.
  Bundle bundle = Bundle::load(test::tiny_sd(), parse_device("cpu"));
  const int64_t hits = bundle.text_encoder_cache_hits();
  EXPECT_EQ(hits, 0);
  const TextConditioning first = encode_prompts(bundle, {"a photo of a cat", "a dog"}, {""});
  EXPECT_EQ(bundle.text_encoder_cache_hits(), 0);
  // One encoder call for the prompts and one for the negative prompts: both kept.
  const TextConditioning again = encode_prompts(bundle, {"a photo of a cat", "a dog"}, {""});
  EXPECT_EQ(bundle.text_encoder_cache_hits(), 2);
  EXPECT_TRUE(torch::equal(first.positive, again.positive));
  EXPECT_TRUE(torch::equal(first.negative, again.negative));
  // Another batch (other order, another negative) runs the encoder, and its rows are the encoder's.
  const TextConditioning swapped = encode_prompts(bundle, {"a dog", "a photo of a cat"}, {"blurry"});
  EXPECT_EQ(bundle.text_encoder_cache_hits(), 2);
  EXPECT_FALSE(torch::equal(swapped.negative, first.negative));
  EXPECT_LE((swapped.positive[1] - first.positive[0]).abs().max().item<double>(), 1e-5);
  // The same result as a bundle that never kept anything (golden: the encoder's own output). The
  // empty negative prompt alone is the call kept from the first encoding.
  torch::Tensor golden = golden_tensor("frames/text_embeddings_cat_and_empty.f32", json::array({2, 77, 32}));
  encode_prompts(bundle, {"a photo of a cat"}, {""});
  EXPECT_EQ(bundle.text_encoder_cache_hits(), 3);
  const TextConditioning kept = encode_prompts(bundle, {"a photo of a cat"}, {""});
  EXPECT_EQ(bundle.text_encoder_cache_hits(), 5);
  EXPECT_LE((torch::cat({kept.positive, kept.negative}) - golden).abs().max().item<double>(), 1e-5);
}

TEST(Bundle, RefusesAnotherDeviceWithAReexportHint) {
  try {
    Bundle::load(test::tiny_sd(), parse_device("cuda"));
    FAIL();
  } catch (const ModelError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("traced for cpu/float32"), std::string::npos) << what;
    EXPECT_NE(what.find("scripts/export_bundle.py"), std::string::npos) << what;
  }
}

// SDINTERP_SDPA_FIRST moves the kernel it names to the front of LibTorch's attention priority order
// for a CUDA bundle (the others keep their order behind it), leaves it alone on the CPU and unset,
// and refuses a name it does not know before anything is set.
TEST(Bundle, SdpaFirstPutsTheNamedAttentionKernelFirstOnCuda) {
  const auto original = at::globalContext().sDPPriorityOrder();
  const auto restore = [&] {
    ::unsetenv("SDINTERP_SDPA_FIRST");
    std::vector<int64_t> order;
    for (const auto kernel : original) order.push_back(static_cast<int64_t>(kernel));
    at::globalContext().setSDPPriorityOrder(order);
  };
  Manifest cuda = load_manifest(test::tiny_sd());
  cuda.device = "cuda";
  Manifest cpu = load_manifest(test::tiny_sd());
  ASSERT_EQ(cpu.device, "cpu");
  ASSERT_NE(original[0], at::SDPBackend::cudnn_attention);  // LibTorch's order tries cuDNN late

  ::setenv("SDINTERP_SDPA_FIRST", "cudnn", 1);
  configure_torch(cpu);
  EXPECT_EQ(at::globalContext().sDPPriorityOrder(), original);
  configure_torch(cuda);
  const auto order = at::globalContext().sDPPriorityOrder();
  EXPECT_EQ(order[0], at::SDPBackend::cudnn_attention);
  std::vector<at::SDPBackend> rest;
  for (const auto kernel : original) {
    if (kernel != at::SDPBackend::cudnn_attention) rest.push_back(kernel);
  }
  EXPECT_EQ(std::vector<at::SDPBackend>(order.begin() + 1, order.end()), rest);

  ::setenv("SDINTERP_SDPA_FIRST", "math", 1);
  configure_torch(cuda);
  EXPECT_EQ(at::globalContext().sDPPriorityOrder()[0], at::SDPBackend::math);

  restore();
  ::setenv("SDINTERP_SDPA_FIRST", "fastest", 1);
  try {
    configure_torch(cuda);
    ADD_FAILURE() << "an unknown kernel name was taken";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "SDINTERP_SDPA_FIRST is 'fastest': use cudnn, flash, efficient or math (or leave it unset)");
  }
  EXPECT_EQ(at::globalContext().sDPPriorityOrder(), original);
  restore();
  configure_torch(cuda);  // unset: LibTorch's order
  EXPECT_EQ(at::globalContext().sDPPriorityOrder(), original);
}

TEST(Bundle, MissingModuleFileIsNamed) {
  test::TempDir dir;
  std::filesystem::copy(test::tiny_sd(), dir.str(), std::filesystem::copy_options::recursive);
  std::filesystem::remove(dir / "unet.pt");
  try {
    Bundle::load(dir.str(), parse_device("cpu"));
    FAIL();
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("unet.pt: missing bundle file"), std::string::npos) << e.what();
  }
}

TEST(Bundle, CorruptModuleFileIsRefused) {
  test::TempDir dir;
  std::filesystem::copy(test::tiny_sd(), dir.str(), std::filesystem::copy_options::recursive);
  std::filesystem::resize_file(dir / "vae_decoder.pt", 1000);
  try {
    Bundle::load(dir.str(), parse_device("cpu"));
    FAIL();
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("vae_decoder.pt: cannot load TorchScript module"), std::string::npos)
        << e.what();
  }
}

// A format version 3 bundle's weights files (unet.safetensors beside unet.pt): each fault is one
// line naming the file.
TEST(Bundle, BrokenWeightsFilesAreRefused) {
  namespace fs = std::filesystem;
  auto expect_refused = [](const std::function<void(const fs::path&)>& spoil, const std::string& expected) {
    test::TempDir dir;
    fs::copy(test::tiny_sd(), dir.str(), fs::copy_options::recursive);
    spoil(fs::path(dir.str()));
    try {
      Bundle::load(dir.str(), parse_device("cpu"));
      ADD_FAILURE() << "loaded; expected " << expected;
    } catch (const ModelError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(expected), std::string::npos) << what;
      EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    }
  };
  expect_refused([](const fs::path& d) { fs::remove(d / "unet.safetensors"); },
                 "unet.safetensors: missing bundle file");
  expect_refused([](const fs::path& d) { fs::resize_file(d / "unet.safetensors", 4); },
                 "unet.safetensors: too short to be a weights file (4 bytes)");
  expect_refused([](const fs::path& d) { fs::resize_file(d / "unet.safetensors", 1000); },
                 "unet.safetensors: truncated weights file (its header runs past the end)");
  expect_refused([](const fs::path& d) { fs::resize_file(d / "unet.safetensors", 100000); },
                 "its data lie outside the file (truncated?) (the bundle is corrupt; re-export it)");
  expect_refused(
      [](const fs::path& d) {
        std::fstream f(d / "text_encoder.safetensors", std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(8);
        f.put('[');  // the header's opening brace
      },
      "text_encoder.safetensors: not a safetensors file (its header is not a JSON object)");
  expect_refused(
      [](const fs::path& d) {
        fs::copy_file(d / "vae_decoder.safetensors", d / "unet.safetensors", fs::copy_options::overwrite_existing);
      },
      "unet.safetensors: has no weight \"m.");
}

// The copied placement (CUDA's: the file's data in one buffer, the weights views of it) run on the
// CPU gives the mapped placement's UNet output.
TEST(Bundle, CopiedWeightsGiveTheMappedOnesResult) {
  const std::filesystem::path dir(test::tiny_sd());
  c10::InferenceMode guard;
  auto load = [&](std::optional<WeightsPlacement> placement) {
    torch::jit::Module m = torch::jit::load((dir / "unet.pt").string());
    m.eval();
    if (placement) attach_weights(m, dir / "unet.safetensors", torch::Device(torch::kCPU), *placement);
    return m;
  };
  torch::manual_seed(3);
  const std::vector<torch::jit::IValue> in = {torch::randn({2, 4, 8, 8}), torch::tensor({10.0f, 700.0f}),
                                              torch::randn({2, 77, 32})};
  torch::jit::Module mapped = load(WeightsPlacement::kMapped);
  torch::jit::Module copied = load(WeightsPlacement::kCopied);
  torch::jit::Module staged = load(WeightsPlacement::kStaged);
  const torch::Tensor a = mapped.forward(in).toTensor();
  const torch::Tensor b = copied.forward(in).toTensor();
  const torch::Tensor placeholders = load(std::nullopt).forward(in).toTensor();
  EXPECT_LE((a - b).abs().max().item<double>(), 1e-6);
  EXPECT_TRUE(torch::equal(staged.forward(in).toTensor(), b));
  EXPECT_GT((a - placeholders).abs().max().item<double>(), 1e-3);  // the comparison can fail
  // Copied: every weight a view of one buffer; mapped: each its own.
  std::set<const void*> copied_storages, mapped_storages;
  for (const auto& p : copied.parameters()) copied_storages.insert(p.storage().data());
  for (const auto& p : mapped.parameters()) mapped_storages.insert(p.storage().data());
  EXPECT_EQ(copied_storages.size(), 1u);
  EXPECT_GT(mapped_storages.size(), 100u);
  EXPECT_THROW(
      attach_weights(mapped, dir / "unet.safetensors", torch::Device(torch::kCUDA, 0), WeightsPlacement::kMapped),
      std::logic_error);
}

// The staged copy (SDINTERP_PINNED_UPLOAD's, through pinned buffers on CUDA) shares the pieces out
// among its threads: every byte arrives once, whatever the piece size and thread count; on the
// CPU the pieces are copied directly, the sharing-out is the same.
TEST(Bundle, StagedCopyMovesEveryByteWhateverThePiecesAndThreads) {
  torch::manual_seed(5);
  const int64_t size = 100003;  // a prime: no piece size divides it
  const torch::Tensor source = torch::randint(0, 256, {size}, torch::kUInt8);
  for (int64_t piece : {int64_t{1}, int64_t{4096}, int64_t{4097}, size, size * 2}) {
    for (int threads : {1, 3, 8}) {
      torch::Tensor target = torch::zeros({size + 5}, torch::kUInt8);
      staged_copy(source.data_ptr<uint8_t>(), size, target, piece, threads);
      EXPECT_TRUE(torch::equal(target.narrow(0, 0, size), source)) << piece << " " << threads;
      EXPECT_EQ(target.narrow(0, size, 5).sum().item<int64_t>(), 0) << "past the end";
    }
  }
  torch::Tensor small = torch::zeros({10}, torch::kUInt8);
  EXPECT_THROW(staged_copy(source.data_ptr<uint8_t>(), size, small, 4096, 2), std::logic_error);
  torch::Tensor floats = torch::zeros({size}, torch::kFloat32);
  EXPECT_THROW(staged_copy(source.data_ptr<uint8_t>(), size, floats, 4096, 2), std::logic_error);
  staged_copy(source.data_ptr<uint8_t>(), 0, small, 4096, 2);  // nothing to copy
  EXPECT_EQ(small.sum().item<int64_t>(), 0);
}

}  // namespace
}  // namespace sdinterp
