// The binary as a user meets it: each bad input gets one line and its exit status, nothing is
// left half-written, job files and metadata repeat runs, batch runs survive failures.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "sdinterp/errors.h"
#include "test_support.h"

namespace sdinterp {
namespace {

namespace fs = std::filesystem;
using test::quote;

std::string sdinterp() { return quote(test::binary()); }
std::string tiny() { return quote(test::tiny_sd()); }
// A fast valid run: 3 frames, 2 steps.
std::string quick(const std::string& extra) {
  return sdinterp() + " generate --bundle " + tiny() + " --prompt 'a cat' --seed 3 --frames 3 --steps 2 " + extra;
}

// One line "sdinterp: error: ..." with `needle`, status `code`, and nothing written in `dir`.
void expect_error(const std::string& command, int code, const std::string& needle, const test::TempDir& dir,
                  size_t entries_before = 0) {
  auto r = test::run_command("cd " + quote(dir.str()) + " && " + command);
  EXPECT_EQ(r.status, code) << command << "\n" << r.output;
  EXPECT_EQ(r.output.rfind("sdinterp: error: ", 0), 0u) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << "one line: " << r.output;
  EXPECT_NE(r.output.find(needle), std::string::npos) << r.output;
  EXPECT_EQ(test::entries(dir.str()), entries_before) << "partial output left by: " << command;
}

TEST(CliErrors, MissingBundle) {
  test::TempDir dir;
  expect_error(sdinterp() + " generate --bundle nowhere --prompt x -o a.gif", kExitModel,
               "bundle folder not found: nowhere", dir);
}

TEST(CliErrors, CorruptBundleFiles) {
  test::TempDir bundle, dir;
  fs::copy(test::tiny_sd(), bundle.str(), fs::copy_options::recursive);
  std::ofstream(bundle / "model.json") << "{\"format_version\": 1, \"device\": ";
  expect_error(sdinterp() + " generate --bundle " + quote(bundle.str()) + " --prompt x -o a.gif", kExitModel,
               "not valid JSON", dir);
  fs::copy_file(test::tiny_sd() + "/model.json", bundle / "model.json", fs::copy_options::overwrite_existing);
  fs::resize_file(bundle / "unet.pt", 100);
  expect_error(sdinterp() + " generate --bundle " + quote(bundle.str()) + " --prompt x -o a.gif", kExitModel,
               "unet.pt: cannot load TorchScript module", dir);
  fs::remove(bundle / "tokenizer/merges.txt");
  expect_error(sdinterp() + " generate --bundle " + quote(bundle.str()) + " --prompt x -o a.gif", kExitModel,
               "merges.txt", dir);
}

TEST(CliErrors, AnInputImageThatCannotBeReadIsSaidBeforeTheBundleLoads) {
  // The bundle's UNet is cut short: were it loaded first (seconds for a real model), its error
  // would come first.
  test::TempDir bundle, images, dir;
  fs::copy(test::tiny_sd(), bundle.str(), fs::copy_options::recursive);
  fs::resize_file(bundle / "unet.pt", 100);
  std::ofstream(images / "walk.gif") << "GIF89a";
  std::ofstream(images / "a.png") << "not a png";
  const std::string morph = sdinterp() + " generate --bundle " + quote(bundle.str()) +
                            " --mode image-morph --prompt x --seed 1 --frames 2 -o a.gif --image ";
  expect_error(morph + quote(images / "none.png") + " --image " + quote(images / "a.png"), kExitIo,
               "none.png: No such file or directory", dir);
  expect_error(morph + quote(images / "walk.gif") + " --image " + quote(images / "a.png"), kExitIo,
               "walk.gif: it is a GIF animation (give PNG or JPEG images)", dir);
}

// info --bundle checks what a cut-short copy or a lost file breaks, without loading the model.
TEST(CliErrors, InfoChecksTheBundlesFiles) {
  test::TempDir bundle, dir;
  fs::copy(test::tiny_sd(), bundle.str(), fs::copy_options::recursive);
  auto whole = test::run_command(sdinterp() + " info --bundle " + quote(bundle.str()));
  EXPECT_EQ(whole.status, 0) << whole.output;
  EXPECT_NE(whole.output.find("files: 11 named by model.json"), std::string::npos) << whole.output;
  EXPECT_NE(whole.output.find("all present, weights headers whole"), std::string::npos) << whole.output;
  fs::resize_file(bundle / "vae_decoder.safetensors", fs::file_size(bundle / "vae_decoder.safetensors") - 1);
  expect_error(sdinterp() + " info --bundle " + quote(bundle.str()), kExitModel, "vae_decoder.safetensors: weight",
               dir);
  fs::remove(bundle / "text_encoder.pt");
  expect_error(sdinterp() + " info --bundle " + quote(bundle.str()) + " --json", kExitModel,
               "text_encoder.pt: missing bundle file", dir);
}

TEST(CliErrors, JobFileThatIsAFolderOrMissing) {
  // A folder reads as nothing: `batch` would have done zero jobs with exit status 0.
  test::TempDir dir, folder;
  for (const std::string& command : {std::string(" run "), std::string(" batch ")}) {
    expect_error(sdinterp() + command + quote(folder.str()), kExitIo, "a folder, not a job file", dir);
    expect_error(sdinterp() + command + "nowhere.json", kExitIo, "nowhere.json: cannot read the job file: No such file",
                 dir);
  }
}

TEST(CliErrors, BundleForAnotherDevice) {
  test::TempDir dir;
  expect_error(quick("--device cuda -o a.gif"), kExitModel, "re-export", dir);
}

TEST(CliErrors, SizeNotAMultipleOfEight) {
  test::TempDir dir;
  expect_error(quick("--height 60 -o a.gif"), kExitUsage, "--height 60 is not a multiple of 8", dir);
}

TEST(CliErrors, SizeTheTracedUnetCannotTake) {
  // A version 1 bundle (tiny-sd as the golden data had it) records no size limit: sdinterp derives
  // it from the UNet's upsamplers (2: images in steps of 16 px) and names the sizes that run.
  test::TempDir bundle, dir;
  fs::copy(test::tiny_sd(), bundle.str(), fs::copy_options::recursive);
  fs::copy_file(test::golden("model_v1.json"), bundle / "model.json", fs::copy_options::overwrite_existing);
  const std::string run =
      sdinterp() + " generate --bundle " + quote(bundle.str()) + " --prompt x --seed 3 --frames 2 --steps 1 ";
  expect_error(
      run + "--width 56 -o a.gif", kExitUsage,
      "--width 56: this bundle's UNet takes sizes in steps of 16 px (it was traced for them); try 48 or 64, or "
      "re-export the bundle with scripts/export_bundle.py",
      dir);
  EXPECT_EQ(test::run_command("cd " + quote(dir.str()) + " && " + run + "--width 48 --height 80 -o a.gif").status, 0);
}

TEST(CliSizes, EveryMultipleOfEightRenders) {
  // models/tiny-sd is traced to take every size (its golden comparison is tests/python/test_sizes_and_paths.py).
  test::TempDir dir;
  for (const char* size : {"--width 56 --height 40", "--width 8 --height 8", "--width 72 --height 24"}) {
    auto r = test::run_command("cd " + quote(dir.str()) + " && " + quick(std::string(size) + " --overwrite -o a.gif"));
    EXPECT_EQ(r.status, 0) << size << "\n" << r.output;
  }
}

TEST(CliErrors, TooFewFrames) {
  test::TempDir dir;
  expect_error(sdinterp() + " generate --bundle " + tiny() + " --prompt x --frames 1 -o a.gif", kExitUsage,
               "--frames takes a whole number from 2 to 100000, not 1", dir);
}

TEST(CliErrors, WrongNumberOfPrompts) {
  test::TempDir dir;
  expect_error(quick("--prompt 'a dog' -o a.gif"), kExitUsage, "needs exactly 1 --prompt (got 2)", dir);
  expect_error(quick("--mode multi-prompt -o a.gif"), kExitUsage, "needs at least 2 --prompt", dir);
}

TEST(CliErrors, NegativesThatDontMatchPrompts) {
  test::TempDir dir;
  expect_error(quick("--mode multi-prompt --prompt b --prompt c --negative x --negative y -o a.gif"), kExitUsage,
               "--negative given 2 times", dir);
}

TEST(CliErrors, UnknownSchedulerAndMode) {
  test::TempDir dir;
  expect_error(quick("--scheduler heun -o a.gif"), kExitUsage, "lms", dir);
  expect_error(quick("--mode spiral -o a.gif"), kExitUsage, "circular", dir);
}

TEST(CliErrors, UnwritableOutput) {
  test::TempDir dir;
  // The parent is a file: not writable even for root.
  expect_error(quick("-o /dev/null/sub/a.gif"), kExitIo, "/dev/null/sub", dir);
}

TEST(CliErrors, ExistingOutputNeedsOverwrite) {
  test::TempDir dir;
  ASSERT_EQ(test::run_command("cd " + quote(dir.str()) + " && " + quick("-o a.gif")).status, 0);
  const auto before = fs::last_write_time(dir / "a.gif");
  auto r = test::run_command("cd " + quote(dir.str()) + " && " + quick("-o a.gif"));
  EXPECT_EQ(r.status, kExitIo) << r.output;
  EXPECT_NE(r.output.find("--overwrite"), std::string::npos) << r.output;
  EXPECT_EQ(fs::last_write_time(dir / "a.gif"), before);
  EXPECT_EQ(test::run_command("cd " + quote(dir.str()) + " && " + quick("-o a.gif --overwrite")).status, 0);
}

TEST(CliErrors, UnknownFlagIsAUsageError) {
  test::TempDir dir;
  expect_error(quick("--framez 3 -o a.gif"), kExitUsage, "--framez", dir);
}

TEST(Cli, MaxVramOnTheCpuIsSaidToDoNothing) {
  test::TempDir dir;
  auto r = test::run_command("cd " + quote(dir.str()) + " && " + quick("--max-vram 4 -o a.gif"));
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("sdinterp: warning: --max-vram applies to CUDA only"), std::string::npos) << r.output;
  auto without = test::run_command("cd " + quote(dir.str()) + " && " + quick("-o b.gif"));
  EXPECT_EQ(without.output.find("--max-vram"), std::string::npos) << without.output;
}

TEST(Cli, LongPromptWarnsWhereItWasCut) {
  test::TempDir dir;
  std::string prompt;
  // 75 words and the start and end tokens fill the 77 the model reads: the 76th word is cut.
  for (int i = 0; i < 75; ++i) prompt += "cat ";
  prompt += "zebra";
  auto r = test::run_command("cd " + quote(dir.str()) + " && " + sdinterp() + " generate --bundle " + tiny() +
                             " --prompt " + quote(prompt) + " --seed 1 --frames 2 --steps 1 -o a.gif");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("sdinterp: warning: --prompt 1 is longer than the model reads"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("1 token cut, dropped text: \"zebra\""), std::string::npos) << r.output;
}

TEST(Cli, NegativePromptWithoutGuidanceWarnsThatItIsNotRead) {
  test::TempDir dir;
  auto run = [&](const std::string& flags) {
    return test::run_command("cd " + quote(dir.str()) + " && " + sdinterp() + " generate --bundle " + tiny() +
                             " --prompt x --seed 1 --frames 2 --steps 1 --overwrite -o a.gif " + flags);
  };
  const std::string words = "sdinterp: warning: --negative has no effect: --guidance 1 is 1 or less";
  auto unguided = run("--guidance 1 --negative blurry");
  EXPECT_EQ(unguided.status, 0) << unguided.output;
  EXPECT_NE(unguided.output.find(words), std::string::npos) << unguided.output;
  for (const char* flags : {"--guidance 1", "--guidance 1.5 --negative blurry"}) {
    auto r = run(flags);
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_EQ(r.output.find("warning"), std::string::npos) << flags << ": " << r.output;
  }
}

TEST(Cli, RandomSeedIsPrintedAndRecorded) {
  test::TempDir dir;
  auto r = test::run_command("cd " + quote(dir.str()) + " && " + sdinterp() + " generate --bundle " + tiny() +
                             " --prompt x --frames 2 --steps 1 -o a.gif");
  ASSERT_EQ(r.status, 0) << r.output;
  auto meta = nlohmann::json::parse(test::read_text(dir / "a.gif.json"));
  ASSERT_TRUE(meta["seed"].is_number_unsigned());
  EXPECT_NE(r.output.find("sdinterp: seed " + std::to_string(meta["seed"].get<uint64_t>())), std::string::npos)
      << r.output;
}

TEST(Cli, MetadataRecordsEverythingAndRepeatsTheRunByteForByte) {
  test::TempDir dir;
  ASSERT_EQ(test::run_command("cd " + quote(dir.str()) + " && " + quick("--mode circular --png-dir first")).status, 0);
  auto meta = nlohmann::json::parse(test::read_text(dir / "first.json"));
  for (const char* key : {"bundle", "mode", "prompt", "negative", "seed", "frames", "steps", "guidance", "height",
                          "width", "step-size", "interp", "scheduler", "batch", "device", "fps", "loop"}) {
    EXPECT_TRUE(meta.contains(key)) << key;
  }
  EXPECT_EQ(meta["height"], 64);
  EXPECT_EQ(meta["device"], "cpu");
  EXPECT_EQ(meta["sdinterp"]["dtype"], "float32");
  EXPECT_TRUE(meta["sdinterp"]["bundle"]["hashes"]["files"].contains("unet.pt"));
  EXPECT_TRUE(meta["sdinterp"]["timings_s"].contains("sampling"));
  // 3 frames in one UNet call, decoded in one call of 3 on the CPU (at most kCpuDecodeChunk).
  EXPECT_EQ(meta["sdinterp"]["decode_chunk"], 3);
  // tiny-sd has no compiled decoder: the one decode call ran the TorchScript one.
  EXPECT_EQ(meta["sdinterp"]["decode_calls"], (nlohmann::json{{"aoti", 0}, {"torchscript", 1}}));
  const auto& load = meta["sdinterp"]["bundle_load_s"];
  for (const char* key : {"text_encoder", "unet", "vae_decoder", "compiled_unet", "compiled_vae_decoder", "total"}) {
    ASSERT_TRUE(load.contains(key) && load[key].is_number()) << key;
    EXPECT_GE(load[key].get<double>(), 0.0) << key;
  }
  EXPECT_GT(load["unet"].get<double>(), 0.0);
  EXPECT_GE(load["total"].get<double>(), load["unet"].get<double>());
  // Of each module's load, its weights file's part (tiny-sd is a format 3 bundle: weights beside).
  for (const char* key : {"text_encoder", "unet", "vae_decoder"}) {
    ASSERT_TRUE(load["weights"].contains(key) && load["weights"][key].is_number()) << key;
    EXPECT_GT(load["weights"][key].get<double>(), 0.0) << key;
    EXPECT_LE(load["weights"][key].get<double>(), load[key].get<double>()) << key;
  }
  // No CUDA context on the CPU.
  EXPECT_EQ(load["cuda_context"].get<double>(), 0.0);
  EXPECT_EQ(load["cuda_warm_up"].get<double>(), 0.0);
  // The caching allocator's peaks are CUDA's: null on the CPU.
  ASSERT_TRUE(meta["sdinterp"].contains("cuda_memory_peaks_gib"));
  EXPECT_TRUE(meta["sdinterp"]["cuda_memory_peaks_gib"].is_null());
  auto r = test::run_command("cd " + quote(dir.str()) + " && " + sdinterp() + " run first.json --png-dir second -q");
  ASSERT_EQ(r.status, 0) << r.output;
  for (int i = 0; i < 3; ++i) {
    const std::string name = "/frame_000" + std::to_string(i) + ".png";
    EXPECT_EQ(test::read_text(dir / ("first" + name)), test::read_text(dir / ("second" + name))) << name;
  }
}

TEST(Cli, RunFileWithFlagOverrides) {
  test::TempDir dir;
  std::ofstream(dir / "job.json") << R"({"bundle": )" << nlohmann::json(test::tiny_sd()).dump()
                                  << R"(, "prompt": "a cat", "seed": 5, "frames": 4, "steps": 2, "output": "x.gif"})";
  auto r = test::run_command("cd " + quote(dir.str()) + " && " + sdinterp() + " run job.json --frames 2 -q");
  ASSERT_EQ(r.status, 0) << r.output;
  auto meta = nlohmann::json::parse(test::read_text(dir / "x.gif.json"));
  EXPECT_EQ(meta["frames"], 2);
  EXPECT_EQ(meta["seed"], 5);
  std::ofstream(dir / "bad.json") << R"({"framez": 3})";
  r = test::run_command("cd " + quote(dir.str()) + " && " + sdinterp() + " run bad.json");
  EXPECT_EQ(r.status, kExitUsage);
  EXPECT_NE(r.output.find("bad.json: unknown key \"framez\""), std::string::npos) << r.output;
}

TEST(Cli, BatchLoadsOnceReportsFailuresAndResumes) {
  test::TempDir dir;
  const std::string bundle = nlohmann::json(test::tiny_sd()).dump();
  {
    std::ofstream jobs(dir / "jobs.jsonl");
    jobs << R"({"bundle": )" << bundle << R"(, "prompt": "a", "seed": 1, "frames": 2, "steps": 1, "output": "a.gif"})"
         << "\n";
    jobs << R"({"bundle": )" << bundle << R"(, "prompt": "b", "seed": 2, "frames": 1, "steps": 1, "output": "b.gif"})"
         << "\n";
    jobs << "# a comment\n\n";
    jobs << R"({"bundle": )" << bundle << R"(, "prompt": "c", "seed": 3, "frames": 2, "steps": 1, "output": "c.gif"})"
         << "\n";
  }
  auto r = test::run_command("cd " + quote(dir.str()) + " && " + sdinterp() + " batch jobs.jsonl");
  EXPECT_EQ(r.status, kExitBatchFailures) << r.output;
  EXPECT_NE(r.output.find("jobs.jsonl:2: --frames takes a whole number from 2 to 100000, not 1"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("batch: 2 done, 0 skipped, 1 failed, model loaded 1 time\n"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(dir / "a.gif") && fs::exists(dir / "c.gif"));
  EXPECT_FALSE(fs::exists(dir / "b.gif"));
  const auto a_time = fs::last_write_time(dir / "a.gif");
  r = test::run_command("cd " + quote(dir.str()) + " && " + sdinterp() + " batch jobs.jsonl --skip-existing");
  EXPECT_NE(r.output.find("batch: 0 done, 2 skipped, 1 failed"), std::string::npos) << r.output;
  EXPECT_EQ(fs::last_write_time(dir / "a.gif"), a_time);
}

TEST(Cli, OutputThatCannotBeWrittenIsNoSuccess) {
  test::TempDir dir;
  // A file or device that refuses the bytes: exit 4, one line.
  auto full = test::run_command("{ " + sdinterp() + " info > /dev/full; }");
  EXPECT_EQ(full.status, 4) << full.output;
  EXPECT_EQ(full.output, "sdinterp: error: cannot write to standard output (closed, or its disk is full)\n");
  // A reader that goes before the command has printed all: interrupted, as a run whose progress
  // reader goes. Enough texts to fill the pipe.
  std::string texts;
  for (int i = 0; i < 3000; ++i) texts += " word" + std::to_string(i);
  auto gone = test::run_command("cd " + quote(dir.str()) + " && bash -c " +
                                quote(sdinterp() + " tokenize --bundle " + tiny() + texts +
                                      " 2> err.txt | head -c 1 > /dev/null; exit ${PIPESTATUS[0]}"));
  EXPECT_EQ(gone.status, 130) << gone.output;
  EXPECT_EQ(test::read_text(dir / "err.txt"), "sdinterp: error: interrupted\n");
}

TEST(Cli, ABatchOutputFlagForManyJobsIsRefusedBeforeAnyRuns) {
  test::TempDir dir;
  std::ofstream(dir / "jobs.jsonl") << R"({"bundle": )" << nlohmann::json(test::tiny_sd()).dump()
                                    << R"(, "prompt": "a", "seed": 1, "frames": 2, "steps": 1})"
                                    << "\n"
                                    << R"({"bundle": )" << nlohmann::json(test::tiny_sd()).dump()
                                    << R"(, "prompt": "b", "seed": 2, "frames": 2, "steps": 1})"
                                    << "\n";
  auto r = test::run_command("cd " + quote(dir.str()) + " && " + sdinterp() + " batch jobs.jsonl -o same.gif");
  EXPECT_EQ(r.status, kExitUsage) << r.output;
  EXPECT_EQ(r.output,
            "sdinterp: error: -o given to batch names one output for all 2 jobs of jobs.jsonl; give each line its "
            "own \"output\"\n");
  EXPECT_EQ(test::entries(dir.str()), 1u);  // the job file alone: the first job did not run either
  // One job line: the flag names its output.
  r = test::run_command("cd " + quote(dir.str()) + " && head -1 jobs.jsonl | " + sdinterp() +
                        " batch - --png-dir frames -q");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(fs::exists(dir / "frames/frame_0001.png"));
}

// A job file given to batch (pretty-printed, or an array of jobs) is refused as a whole, with the
// way to run it, instead of one "not valid JSON" per line.
TEST(CliErrors, ABatchFileThatIsNotOneJobPerLineSaysHowToRunIt) {
  test::TempDir dir;
  std::ofstream(dir / "job.json") << "{\n  \"prompt\": \"a\",\n  \"output\": \"a.gif\"\n}\n";
  std::ofstream(dir / "jobs.json") << "[{\"prompt\": \"a\"}, {\"prompt\": \"b\"}]\n";
  for (const std::string& flags : {"", " --status"}) {
    expect_error(sdinterp() + " batch " + quote(dir / "job.json") + flags, kExitUsage,
                 "job.json: one job written over several lines; a batch takes one job per line (JSON Lines): run it "
                 "with sdinterp run",
                 dir, 2);
    expect_error(sdinterp() + " batch " + quote(dir / "jobs.json") + flags, kExitUsage,
                 "jobs.json: a JSON array; a batch takes one job object per line (JSON Lines): jq -c '.[]' ", dir, 2);
  }
}

TEST(Cli, ABatchWithoutJobsSaysSoAndSucceeds) {
  test::TempDir dir;
  std::ofstream(dir / "jobs.jsonl") << "# made by a script that found nothing to make\n\n";
  auto r = test::run_command("cd " + quote(dir.str()) + " && " + sdinterp() + " batch jobs.jsonl");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("sdinterp: warning: jobs.jsonl holds no jobs"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("batch: 0 done, 0 skipped, 0 failed"), std::string::npos) << r.output;
}

TEST(Cli, TwentyJobBatchSurvivesAKillAndEveryMetadataRepeatsItsFrames) {
  test::TempDir dir;
  const std::string bundle = nlohmann::json(test::tiny_sd()).dump();
  {
    std::ofstream jobs(dir / "jobs.jsonl");
    const char* modes[] = {"slerp-latent", "circular", "prompt-walk", "slerp-latent"};
    for (int i = 0; i < 20; ++i) {
      jobs << R"({"bundle": )" << bundle << R"(, "mode": ")" << modes[i % 4] << R"(", "prompt": "job )" << i
           << R"(", "seed": )" << 100 + i << R"(, "frames": 3, "steps": 2, "png-dir": "out)" << i << "\"}\n";
    }
  }
  // Kill the batch hard (SIGKILL, no clean-up) once a few jobs are done, then resume it.
  const std::string script =
      "cd " + quote(dir.str()) + " || exit 1; " + sdinterp() +
      " batch jobs.jsonl > first.log 2>&1 & pid=$!; "
      "for i in $(seq 600); do [ \"$(grep -c '^wrote' first.log)\" -ge 5 ] && break; sleep 0.1; done; "
      "kill -KILL $pid; wait $pid; " +
      sdinterp() + " batch jobs.jsonl --skip-existing";
  auto r = test::run_command("bash -c " + quote(script));
  ASSERT_EQ(r.status, 0) << r.output;
  const std::string first = test::read_text(dir / "first.log");
  const long done_before = std::count(first.begin(), first.end(), '\n');
  EXPECT_GE(done_before, 5) << first;
  EXPECT_LT(done_before, 20) << "the kill came too late to test a resume";
  EXPECT_NE(r.output.find("model loaded 1 time\n"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("0 failed"), std::string::npos) << r.output;
  for (int i = 0; i < 20; ++i) {
    const std::string out = dir / ("out" + std::to_string(i));
    ASSERT_TRUE(fs::exists(out + ".json")) << out;
    auto again = test::run_command("cd " + quote(dir.str()) + " && " + sdinterp() + " run " + quote(out + ".json") +
                                   " --png-dir again" + std::to_string(i) + " -q");
    ASSERT_EQ(again.status, 0) << again.output;
    for (int f = 0; f < 3; ++f) {
      const std::string name = "/frame_000" + std::to_string(f) + ".png";
      ASSERT_EQ(test::read_text(out + name), test::read_text(dir / ("again" + std::to_string(i) + name)))
          << out << name;
    }
  }
}

TEST(Cli, InterruptStopsAndLeavesNothing) {
  test::TempDir dir;
  // Waits for the first denoising step, then sends SIGINT; the run must stop and clean up.
  const std::string script =
      "cd " + quote(dir.str()) + " || exit 1; " + sdinterp() + " generate --bundle " + tiny() +
      " --prompt x --seed 1 --frames 40 --steps 50 --batch 1 -o a.gif --png-dir f --progress json"
      " > log 2>err & pid=$!; "
      "for i in $(seq 600); do grep -q '\"step\"' log 2>/dev/null && break; sleep 0.1; done; "
      "kill -INT $pid; wait $pid; echo status=$?";
  auto r = test::run_command("bash -c " + quote(script));
  EXPECT_NE(r.output.find("status=130"), std::string::npos) << r.output << test::read_text(dir / "err");
  EXPECT_NE(test::read_text(dir / "err").find("sdinterp: error: interrupted"), std::string::npos);
  fs::remove(dir / "log");
  fs::remove(dir / "err");
  EXPECT_EQ(test::entries(dir.str()), 0u) << "temporaries left behind";
}

TEST(Cli, TokenizePrintsJsonLines) {
  auto r = test::run_command(sdinterp() + " tokenize --bundle " + tiny() + " 'a photo of a cat' 'Café'");
  ASSERT_EQ(r.status, 0) << r.output;
  std::istringstream lines(r.output);
  std::string line;
  std::getline(lines, line);
  auto first = nlohmann::json::parse(line);
  EXPECT_EQ(first["text"], "a photo of a cat");
  std::vector<int64_t> head(first["ids"].begin(), first["ids"].begin() + 7);
  EXPECT_EQ(head, (std::vector<int64_t>{49406, 320, 1125, 539, 320, 2368, 49407}));
  EXPECT_EQ(first["ids"].size(), 77u);
  EXPECT_EQ(first["truncated"], 0);
  std::getline(lines, line);
  EXPECT_EQ(nlohmann::json::parse(line)["text"], "Café");
}

// Commands that run no model do not load LibTorch (it lives in libsdinterp_runtime.so, loaded on
// first use), and without that library they still work while model commands say what is missing.
TEST(Cli, CommandsWithoutAModelNeverLoadLibTorch) {
  for (const std::string& args : std::vector<std::string>{"--version", "tokenize --bundle " + tiny() + " 'a cat'"}) {
    auto r = test::run_command("LD_DEBUG=files " + sdinterp() + " " + args);
    ASSERT_EQ(r.status, 0) << args << "\n" << r.output;
    EXPECT_EQ(r.output.find("libtorch"), std::string::npos) << args << " loaded LibTorch";
    EXPECT_EQ(r.output.find("libsdinterp_runtime"), std::string::npos) << args << " loaded the runtime";
  }
  auto with_model = test::run_command("LD_DEBUG=files " + sdinterp() + " info");
  ASSERT_EQ(with_model.status, 0) << with_model.output;
  EXPECT_NE(with_model.output.find("libtorch_cpu"), std::string::npos) << "the check above cannot see LibTorch load";

  test::TempDir dir;
  const std::string lone = dir / "sdinterp";
  fs::copy_file(test::binary(), lone);
  auto version = test::run_command(quote(lone) + " --version");
  EXPECT_EQ(version.status, 0) << version.output;
  test::TempDir out;
  expect_error(quote(lone) + " generate --bundle " + tiny() + " --prompt x -o a.gif", kExitInternal,
               "cannot load the model runtime", out);
}

// GIF and PNG output load no FFmpeg (nor the OpenMP runtime it brings); WebP and MP4 load the
// codec module when asked for.
TEST(Cli, EncodeLoadsCodecLibrariesOnlyForWebpAndMp4) {
  test::TempDir dir;
  auto frames = test::run_command(quick("--png-dir " + quote(dir / "frames")));
  ASSERT_EQ(frames.status, 0) << frames.output;
  const std::string encode = "LD_DEBUG=files " + sdinterp() + " encode " + quote(dir / "frames") + "/*.png -o ";
  auto gif = test::run_command(encode + quote(dir / "a.gif"));
  ASSERT_EQ(gif.status, 0) << gif.output;
  for (const char* lib : {"libavcodec", "libwebp", "libgomp", "libtorch", "libsdinterp_codecs"}) {
    EXPECT_EQ(gif.output.find(lib), std::string::npos) << "GIF output loaded " << lib;
  }
  for (const char* ext : {"webp", "mp4"}) {
    auto r = test::run_command(encode + quote(dir / (std::string("a.") + ext)));
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("libsdinterp_codecs"), std::string::npos) << ext << " did not load the codec module";
    EXPECT_TRUE(fs::file_size(dir / (std::string("a.") + ext)) > 0);
  }
}

// LibTorch's OpenMP threads spin briefly unless the user chose (README: several processes).
TEST(Cli, OpenMpSpinsBrieflyUnlessTheUserChose) {
  auto info = [](const std::string& env) {
    auto r = test::run_command(env + " " + sdinterp() + " info --json");
    EXPECT_EQ(r.status, 0) << r.output;
    return nlohmann::json::parse(r.output)["openmp_env"];
  };
  auto by_default = info("env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT");
  EXPECT_EQ(by_default["GOMP_SPINCOUNT"], "1000");
  EXPECT_TRUE(by_default["OMP_WAIT_POLICY"].is_null());
  auto policy = info("env -u GOMP_SPINCOUNT OMP_WAIT_POLICY=active");
  EXPECT_EQ(policy["OMP_WAIT_POLICY"], "active");
  EXPECT_TRUE(policy["GOMP_SPINCOUNT"].is_null());
  auto spin = info("env -u OMP_WAIT_POLICY GOMP_SPINCOUNT=5000");
  EXPECT_TRUE(spin["OMP_WAIT_POLICY"].is_null());
  EXPECT_EQ(spin["GOMP_SPINCOUNT"], "5000");
}

// LibTorch's CUDA allocator grows expandable segments unless the user set its variables (README:
// memory); what LibTorch itself took is reported, so this fails if the setting never reaches it.
TEST(Cli, CudaMemoryInExpandableSegmentsUnlessTheUserChose) {
  auto info = [](const std::string& env) {
    auto r = test::run_command("env -u PYTORCH_CUDA_ALLOC_CONF -u PYTORCH_ALLOC_CONF " + env + " " + sdinterp() +
                               " info --json");
    EXPECT_EQ(r.status, 0) << r.output;
    return nlohmann::json::parse(r.output)["cuda_allocator"];
  };
  auto by_default = info("");
  EXPECT_TRUE(by_default["expandable_segments"].get<bool>());
  EXPECT_EQ(by_default["env"]["PYTORCH_CUDA_ALLOC_CONF"], "expandable_segments:True");
  EXPECT_TRUE(by_default["env"]["PYTORCH_ALLOC_CONF"].is_null());
  auto fixed = info("PYTORCH_CUDA_ALLOC_CONF=expandable_segments:False");
  EXPECT_FALSE(fixed["expandable_segments"].get<bool>());
  auto other = info("PYTORCH_ALLOC_CONF=max_split_size_mb:512");
  EXPECT_FALSE(other["expandable_segments"].get<bool>());
  EXPECT_TRUE(other["env"]["PYTORCH_CUDA_ALLOC_CONF"].is_null());
}

TEST(Cli, InfoSummarisesTheBundle) {
  auto r = test::run_command(sdinterp() + " info --json --bundle " + tiny());
  ASSERT_EQ(r.status, 0) << r.output;
  auto info = nlohmann::json::parse(r.output);
  EXPECT_FALSE(info["libtorch"].get<std::string>().empty());
  EXPECT_EQ(info["bundle"]["dtype"], "float32");
  EXPECT_EQ(info["bundle"]["native_size"], 64);
  EXPECT_EQ(info["bundle"]["schedule"]["prediction_type"], "epsilon");
}

}  // namespace
}  // namespace sdinterp
