// The job-key table: every key reads back what it writes, and the lists made from it agree.
#include <gtest/gtest.h>

#include <algorithm>

#include "sdinterp/errors.h"
#include "sdinterp/frame_sink.h"
#include "sdinterp/job.h"
#include "sdinterp/job_files.h"
#include "test_support.h"

namespace sdinterp {
namespace {

RunConfig unusual() {
  RunConfig c;
  c.bundle_dir = "b";
  c.mode = WalkMode::kImageMorph;
  c.prompts = {"a", "b"};
  c.negatives = {"x"};
  c.seed = 18446744073709551615ull;
  c.frames = 7;
  c.steps = 9;
  c.guidance = 3.5;
  c.height = 72;
  c.width = 80;
  c.step_size = 0.25;
  c.interp = InterpKind::kLerp;
  c.scheduler = SchedulerKind::kEuler;
  c.keyframes = {Keyframe{0, "k", std::string("n"), 4, Ease::kSine}};
  c.cycle = true;
  c.ease = Ease::kOut;
  c.pace = Pace::kEven;
  c.pace_passes = 3;
  c.images = {"i.png", "j.jpg"};
  c.fit = Fit::kPad;
  c.strength = 0.3;
  c.inversion = Inversion::kDdim;
  c.adain = true;
  c.batch = 2;
  c.max_vram_gb = 1.5;
  c.device = parse_device("cpu");
  c.unet_engine = UnetEngine::kTorchScript;
  c.output = "o.webp";
  c.png_dir = "p";
  c.fps = 24;
  c.loop = 3;
  c.boomerang = true;
  c.seamless_loop = true;
  c.dither = Dither::kNone;
  c.lossless = true;
  c.quality = 50;
  c.crf = 30;
  c.overwrite = true;
  return c;
}

TEST(JobKeys, EveryRecordedKeyReadsBackWhatItWrites) {
  const nlohmann::json written = job_to_json(unusual());
  RunConfig read;
  apply_job(written, read, "test");
  EXPECT_EQ(job_to_json(read), written);
  // Each recorded value differs from the default: a key that reads or writes nothing would show.
  const nlohmann::json defaults = job_to_json(RunConfig{});
  for (const auto& [key, value] : written.items()) EXPECT_NE(value, defaults.at(key)) << key;
}

TEST(JobKeys, TheListsAreMadeFromTheTable) {
  const auto& table = job_key_table();
  ASSERT_EQ(job_keys().size(), table.size());
  const nlohmann::json written = job_to_json(RunConfig{});
  for (const JobKey& k : table) {
    EXPECT_EQ(written.contains(k.key), static_cast<bool>(k.write)) << k.key;
    EXPECT_FALSE(k.help.empty()) << k.key;
  }
  EXPECT_FALSE(written.contains("overwrite")) << "a rerun from metadata must not clobber";
  EXPECT_EQ(job_path_keys(), (std::vector<std::string>{"bundle", "image", "output", "png-dir"}));
}

TEST(JobKeys, UnknownAndMistypedKeysNameThemselves) {
  RunConfig c;
  try {
    apply_job({{"strenght", 0.5}}, c, "job.json");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("job.json: unknown key \"strenght\" (did you mean \"strength\"?)"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(apply_job({{"adain", "yes"}}, c, "j"), ConfigError);
  EXPECT_THROW(apply_job({{"fit", "cover"}}, c, "j"), ConfigError);
  EXPECT_THROW(apply_job({{"image", 3}}, c, "j"), ConfigError);
}

TEST(JobKeys, WholeNumbersWrittenWithAPointAreTakenAsEveryCountIs) {
  // A script's float (json.dumps(7.0)) is a whole number for the seed and a keyframe's frame and
  // seed, as it is for frames and steps; a fraction, a negative or a seed a double cannot hold
  // exactly is refused.
  RunConfig c;
  apply_job({{"seed", 7.0}, {"frames", 3.0}}, c, "j");
  EXPECT_EQ(c.seed, 7u);
  EXPECT_EQ(c.frames, 3);
  apply_job(nlohmann::json::parse(R"({"seed": 1e3})"), c, "j");
  EXPECT_EQ(c.seed, 1000u);
  apply_job(nlohmann::json::parse(R"({"seed": 9007199254740992.0})"), c, "j");
  EXPECT_EQ(c.seed, 9007199254740992u);
  apply_job(nlohmann::json::parse(
                R"({"keyframes": [{"frame": 0.0, "prompt": "a", "seed": 2.0}, {"frame": 4e0, "prompt": "b"}]})"),
            c, "j");
  ASSERT_EQ(c.keyframes.size(), 2u);
  EXPECT_EQ(c.keyframes[0].seed, 2u);
  EXPECT_EQ(c.keyframes[1].frame, 4);
  for (const char* bad : {R"({"seed": 1.5})", R"({"seed": -1.0})", R"({"seed": 1e19})",
                          R"({"keyframes": [{"frame": 0.5, "prompt": "a"}]})",
                          R"({"keyframes": [{"frame": 0, "prompt": "a", "seed": -2.0}]})"}) {
    EXPECT_THROW(apply_job(nlohmann::json::parse(bad), c, "j"), ConfigError) << bad;
  }
  try {
    apply_job(nlohmann::json::parse(R"({"seed": 1e19})"), c, "job.json");
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(),
                 "job.json: --seed takes a whole number from 0 to 18446744073709551615, not 1e+19 (a seed above "
                 "2^53 must be written as digits alone, without a point or exponent)");
  }
}

TEST(JobKeys, ANamedOptionThatIsNotAStringListsItsNames) {
  // A name is not a text: no {"bytes": HEX} advice, its table's names instead.
  RunConfig c;
  try {
    apply_job(nlohmann::json::parse(R"({"interp": null})"), c, "job.json");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "job.json: \"interp\" takes a name as a string (slerp, lerp), not null");
  }
  EXPECT_THROW(apply_job(nlohmann::json::parse(R"({"scheduler": ["lms"]})"), c, "j"), ConfigError);
  EXPECT_THROW(apply_job(nlohmann::json::parse(R"({"mode": {"bytes": "6369726375"}})"), c, "j"), ConfigError);
  apply_job(nlohmann::json::parse(R"({"interp": "lerp"})"), c, "j");
  EXPECT_EQ(c.interp, InterpKind::kLerp);
}

TEST(JobFiles, ANumberTooLargeForJsonIsAUsageError) {
  // Found by fuzz/job_fuzz.cpp: nlohmann reports it as out_of_range, not as a parse error.
  try {
    parse_job(R"({"prompt": "a", "seed": 88888888888888888888888888E8888888888888})", "job.json");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(),
                 "job.json: not valid JSON: number overflow parsing '88888888888888888888888888E8888888888888'");
  }
}

TEST(JobFiles, AJobFileOfOneJobPerLineIsCalledABatchFile) {
  auto message = [](const std::string& text) {
    try {
      parse_job_object(text, "jobs.jsonl");
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_EQ(message("{\"prompt\": \"a\"}\n{\"prompt\": \"b\"}\n"),
            "jobs.jsonl:2:1: not valid JSON: syntax error while parsing value - unexpected '{'; expected end of "
            "input; it holds one job per line (JSON Lines): run them with sdinterp batch");
  // A job over several lines with a mistake is not called one.
  EXPECT_EQ(message("{\"prompt\": \"a\",\n \"x\"}"),
            "jobs.jsonl:2:5: not valid JSON: syntax error while parsing object separator - unexpected '}'; expected "
            "':'");
}

TEST(KeyframeFlag, TheCompactFormReadsEachFieldOnce) {
  const nlohmann::json k = keyframe_flag_value("12,seed=3,ease=sine,negative=blurry:a fox: at dawn");
  EXPECT_EQ(k,
            nlohmann::json(
                {{"frame", 12}, {"seed", 3}, {"ease", "sine"}, {"negative", "blurry"}, {"prompt", "a fox: at dawn"}}));
  const auto refused = [](const std::string& text, const std::string& words) {
    try {
      keyframe_flag_value(text);
      ADD_FAILURE() << text << " was accepted";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    }
  };
  // A field given twice was read as its last value, silently.
  refused("0,seed=1,seed=2:a", "--keyframe \"0,seed=1,seed=2:a\": seed is given twice; give it once");
  refused("0,ease=sine,ease=cubic:a", "ease is given twice");
  refused("0,negative=x,negative=y:a", "negative is given twice");
  // A comma inside a negative cannot be told from the next field: the message says what to write.
  refused("0,negative=blurry, dark:a",
          "unknown \" dark\"; after the frame come seed=N, ease=NAME, negative=TEXT (a negative with a comma or "
          "colon: give the keyframe as a JSON object)");
  refused("0,sed=1:a", "unknown \"sed=1\"; after the frame come seed=N, ease=NAME, negative=TEXT");
}

TEST(JobFiles, AFramesFolderIsDoneWhateverItsNamesWidth) {
  // More than 10000 frames are named frame_00000.png ...: --skip-existing finds the first by either name.
  test::TempDir dir;
  RunConfig c;
  c.bundle_dir = "b";
  c.prompts = {"a"};
  c.png_dir = dir / "f";
  std::filesystem::create_directory(c.png_dir);
  { std::ofstream(metadata_path(c)) << job_to_json(c).dump(); }
  const nlohmann::json explicit_keys = {{"prompt", "a"}};
  EXPECT_FALSE(job_already_done(c, explicit_keys));  // no frames
  { std::ofstream(std::filesystem::path(c.png_dir) / png_frame_name(1, 5)); }
  EXPECT_FALSE(job_already_done(c, explicit_keys));  // not the first frame
  { std::ofstream(std::filesystem::path(c.png_dir) / png_frame_name(0, 5)); }
  EXPECT_TRUE(job_already_done(c, explicit_keys));
  std::filesystem::remove(std::filesystem::path(c.png_dir) / png_frame_name(0, 5));
  { std::ofstream(std::filesystem::path(c.png_dir) / png_frame_name(0, 4)); }
  EXPECT_TRUE(job_already_done(c, explicit_keys));
  c.prompts = {"b"};  // the metadata records another job
  EXPECT_FALSE(job_already_done(c, {{"prompt", "b"}}));
}

}  // namespace
}  // namespace sdinterp
