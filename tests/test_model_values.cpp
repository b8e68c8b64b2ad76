// Every out-of-range or mistyped value of every numeric option gets one line in the project's words,
// exit status 2 and nothing written, the same through `generate`'s flags, a `run` job file and
// `encode`: the cases come from the option table itself (numeric_options()).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "sdinterp/config.h"
#include "sdinterp/errors.h"
#include "sdinterp/number_text.h"
#include "test_support.h"

namespace sdinterp {
namespace {

namespace fs = std::filesystem;
using test::quote;

// The expected line ends with what the option takes and the value refused.
void expect_refused(const std::string& command, const std::string& expected, const test::TempDir& dir,
                    size_t files_before = 0, const std::string& source = "") {
  auto r = test::run_command("cd " + quote(dir.str()) + " && " + command);
  EXPECT_EQ(r.status, kExitUsage) << command << "\n" << r.output;
  EXPECT_EQ(r.output.rfind("sdinterp: error: " + source, 0), 0u) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << "one line: " << r.output;
  EXPECT_NE(r.output.find(expected), std::string::npos) << "expected: " << expected << "\ngot: " << r.output;
  EXPECT_EQ(r.output.find("CLI11"), std::string::npos) << r.output;
  EXPECT_EQ(test::entries(dir.str()), files_before) << "output left by: " << command;
}

std::string message(const NumericOption& o, const std::string& value) {
  return "--" + std::string(o.key) + " takes " + range_text(o) + ", not " + value;
}

std::string generate_without_seed() {
  return quote(test::binary()) + " generate --bundle " + quote(test::tiny_sd()) + " --prompt x -o a.gif ";
}
std::string generate() { return generate_without_seed() + "--seed 1 "; }

TEST(OptionValues, EveryNumericFlagOutOfRangeOrNotANumber) {
  test::TempDir dir;
  for (const NumericOption& o : numeric_options()) {
    const std::string flag = " --" + std::string(o.key) + " ";
    const std::string below = number_text(o.above_min ? o.min : o.min - 1);
    const std::string above = number_text(o.max + 1);
    expect_refused(generate() + flag + quote(below), message(o, below), dir);
    expect_refused(generate() + flag + above, message(o, above), dir);
    expect_refused(generate() + flag + "ten", message(o, "\"ten\""), dir);
    if (o.integer) expect_refused(generate() + flag + "2.5", message(o, "2.5"), dir);
  }
}

TEST(OptionValues, EveryNumericJobKeyOutOfRangeOrMistyped) {
  test::TempDir dir;
  for (const NumericOption& o : numeric_options()) {
    const std::string key(o.key);
    for (const nlohmann::json& value : {nlohmann::json(o.max + 1), nlohmann::json("ten"), nlohmann::json(1e12)}) {
      nlohmann::json job = {{"bundle", test::tiny_sd()}, {"prompt", "x"}, {"seed", 1}, {"output", "a.gif"}};
      job[key] = value;
      std::ofstream(dir / "job.json") << job.dump();
      const std::string shown = value.is_string() ? value.dump() : number_text(value.get<double>());
      // Named with the file, whether the job reader or the run's checks refuse it.
      expect_refused(quote(test::binary()) + " run job.json", message(o, shown), dir, 1, "job.json: ");
    }
  }
}

TEST(OptionValues, EncodeReadsItsNumbersAsGenerateDoes) {
  test::TempDir frames, dir;
  auto made =
      test::run_command("cd " + quote(frames.str()) + " && " + generate() + "--frames 2 --steps 1 --png-dir f -q");
  ASSERT_EQ(made.status, 0) << made.output;
  const std::string encode = quote(test::binary()) + " encode " + quote(frames / "f") + "/frame_000*.png -o out.webp";
  for (const char* key : {"fps", "loop", "quality", "crf"}) {
    const NumericOption& o = numeric_option(key);
    const std::string flag = " --" + std::string(key) + " ";
    const std::string above = number_text(o.max + 1);
    expect_refused(encode + flag + above, message(o, above), dir);
    expect_refused(encode + flag + "ten", message(o, "\"ten\""), dir);
  }
}

// A format's own limits (its sink owns them) are the same through generate and encode: the same
// line for a value the format refuses, and a value one format takes is taken by both.
TEST(OptionValues, FormatLimitsAreTheSameForGenerateAndEncode) {
  test::TempDir frames, dir;
  auto made =
      test::run_command("cd " + quote(frames.str()) + " && " + generate() + "--frames 2 --steps 1 --png-dir f -q");
  ASSERT_EQ(made.status, 0) << made.output;
  const std::string encode = quote(test::binary()) + " encode " + quote(frames / "f") + "/frame_000*.png -o ";
  const std::vector<std::pair<std::string, std::string>> refused = {
      {"a.gif --fps 60", "--fps 60 is too high"},
      {"a.webp --loop 65536", "--loop must be 0 (forever) or a play count up to 65535, got 65536"},
      {"a.mp4 --fps 300", "--fps 300 is too high: use --fps 240 or less for MP4"},
      {"a.gif --fps 0.001", "--fps 0.001 is too low: a GIF frame lasts at most 655.35 s"}};
  const std::string generate_to =
      quote(test::binary()) + " generate --bundle " + quote(test::tiny_sd()) + " --prompt x --seed 1 -o ";
  for (const auto& [args, expected] : refused) {
    expect_refused(generate_to + args, expected, dir);
    expect_refused(encode + args, expected, dir);
  }
  for (const std::string& command :
       {generate_to + "a.gif --frames 2 --steps 1 -q --loop 65536 --fps 50", encode + "b.gif --loop 65536 --fps 50"}) {
    auto r = test::run_command("cd " + quote(dir.str()) + " && " + command);
    EXPECT_EQ(r.status, 0) << command << "\n" << r.output;
  }
}

TEST(OptionValues, EveryNamedOptionListsItsNames) {
  test::TempDir dir;
  const std::vector<std::pair<std::string, std::string>> options = {
      {"mode", "prompt-walk, slerp-latent, multi-prompt, circular"},
      {"interp", "slerp, lerp"},
      {"scheduler", "lms, lms_karras, euler, euler_karras, ddim, pndm, dpmpp_2m, dpmpp_2m_karras"},
      {"device", "auto, cpu, cuda, cuda:N"},
      {"unet-engine", "auto, torchscript, aoti"},
      {"dither", "diffusion, ordered, none"},
      {"progress", "auto, bar, json, none"}};
  for (const auto& [name, names] : options) {
    expect_refused(generate() + "--" + name + " sideways",
                   "unknown --" + name + " \"sideways\"; choose one of: " + names, dir);
  }
  std::ofstream(dir / "job.json") << R"({"bundle": )" << nlohmann::json(test::tiny_sd()).dump()
                                  << R"(, "prompt": "x", "scheduler": "sideways", "output": "a.gif"})";
  expect_refused(quote(test::binary()) + " run job.json", "unknown --scheduler \"sideways\"; choose one of: lms,", dir,
                 1);
}

TEST(OptionValues, Seeds) {
  test::TempDir dir;
  const std::string takes = std::string("--seed takes a whole number from 0 to ") + kMaxSeedText + ", not ";
  expect_refused(generate_without_seed() + "--seed -5", takes + "-5", dir);
  expect_refused(generate_without_seed() + "--seed 18446744073709551616", takes + "18446744073709551616", dir);
  expect_refused(generate_without_seed() + "--seed 1.5", takes + "1.5", dir);
  // A flag that takes one value, given twice.
  expect_refused(generate() + "--seed 2", "--seed given 2 times; give it once", dir);
  std::ofstream(dir / "job.json") << R"({"bundle": )" << nlohmann::json(test::tiny_sd()).dump()
                                  << R"(, "prompt": "x", "seed": -5, "output": "a.gif"})";
  expect_refused(quote(test::binary()) + " run job.json", "job.json: " + takes + "-5", dir, 1);
  // The largest seed is taken, and recorded as given.
  auto r = test::run_command("cd " + quote(dir.str()) + " && " + generate_without_seed() + "--seed " + kMaxSeedText +
                             " --frames 2 --steps 1 -q");
  EXPECT_EQ(r.status, 0) << r.output;
  auto meta = nlohmann::json::parse(test::read_text(dir / "a.gif.json"));
  EXPECT_EQ(meta["seed"].get<uint64_t>(), UINT64_MAX);
}

// run and batch take their values from the job: a flag they show with a default ("--frames
// INT=30") would read as if a flag not given set 30 and replaced the job's own frames.
TEST(OptionValues, RunAndBatchHelpShowsNoDefaultThatWouldReplaceTheJobs) {
  const std::string sdinterp = quote(test::binary());
  for (const std::string command : {"run", "batch"}) {
    auto r = test::run_command(sdinterp + " " + command + " --help");
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("--frames INT "), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("--frames INT="), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("--mode TEXT="), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("A flag given replaces the job's value"), std::string::npos) << r.output;
  }
  auto generate = test::run_command(sdinterp + " generate --help");
  EXPECT_NE(generate.output.find("--frames INT=30"), std::string::npos) << generate.output;
  EXPECT_NE(test::run_command(sdinterp + " encode --help").output.find("--fps NUMBER=10"), std::string::npos);
}

// Mistyped commands and options, extra arguments, an option without its value, a switch given a
// value: each in the project's words, with the nearest name where there is one (CLI11 said "The
// following argument was not expected", and for 'generate --framez 3' only "--bundle is required").
TEST(OptionValues, CommandLineMistakesNameWhatWasMeant) {
  test::TempDir dir;
  const std::string sdinterp = quote(test::binary());
  const std::vector<std::pair<std::string, std::string>> cases = {
      {sdinterp, "give a command: generate, tokenize, run, batch, encode, info, report (see sdinterp --help)"},
      {sdinterp + " generat",
       "unknown command 'generat' (did you mean generate?); the commands: generate, tokenize, run, batch, encode, "
       "info, report (see sdinterp --help)"},
      {sdinterp + " generate --framez 3", "unknown option --framez (did you mean --frames?) (see sdinterp generate"},
      {generate() + "--Seamless", "unknown option --Seamless (did you mean --seamless-loop?)"},
      {generate() + "--negative --ugly",
       "unknown option --ugly; a value that starts with -- is written --negative=--ugly"},
      {generate() + "--frames", "--frames needs a value (INT) (see sdinterp generate --help)"},
      {generate() + "--overwrite=maybe", "--overwrite is a switch: give it alone (or =true, =false), not 'maybe'"},
      {sdinterp + " info extra", "unexpected argument 'extra' (see sdinterp info --help)"},
      {sdinterp + " info --version", "--version is sdinterp's own option, not info's: sdinterp --version"},
      {sdinterp + " run a.json b.json", "unexpected argument 'b.json'"},
      {sdinterp + " encode -o a.gif", "missing the frames argument (see sdinterp encode --help)"}};
  for (const auto& [command, expected] : cases) {
    expect_refused(command, expected, dir);
    EXPECT_EQ(test::run_command(command).output.find("not expected"), std::string::npos) << command;
  }
  // After "--" an option's name is an argument; a value given as --negative=--ugly is taken.
  auto r = test::run_command("cd " + quote(dir.str()) + " && " + generate() +
                             "--negative=--ugly --frames 2 --steps 1 -q && " + sdinterp + " tokenize --bundle " +
                             quote(test::tiny_sd()) + " -- --framez");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("\"text\":\"--framez\""), std::string::npos) << r.output;
}

TEST(OptionValues, HeightAndWidthZeroMeanTheNativeSize) {
  test::TempDir dir;
  auto r = test::run_command("cd " + quote(dir.str()) + " && " + generate() +
                             "--height 0 --width 0 --frames 2 --steps 1 -q");
  ASSERT_EQ(r.status, 0) << r.output;
  auto meta = nlohmann::json::parse(test::read_text(dir / "a.gif.json"));
  EXPECT_EQ(meta["width"], 64) << meta.dump();  // the size used
  EXPECT_EQ(meta["height"], 64);
}

}  // namespace
}  // namespace sdinterp
