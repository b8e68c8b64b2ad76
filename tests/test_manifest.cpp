#include <gtest/gtest.h>

#include "sdinterp/errors.h"
#include "sdinterp/manifest.h"
#include "test_support.h"

namespace sdinterp {
namespace {

std::string tiny_manifest_text() { return test::read_text(test::tiny_sd() + "/model.json"); }

// Expects parse_manifest to throw ModelError whose message contains `needle`.
void expect_error(const std::string& text, const std::string& needle) {
  try {
    parse_manifest(text, "model.json");
    FAIL() << "no error for: " << needle;
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << "one line";
  }
}

std::string replace(std::string text, const std::string& from, const std::string& to) {
  auto pos = text.find(from);
  EXPECT_NE(pos, std::string::npos) << from;
  if (pos != std::string::npos) text.replace(pos, from.size(), to);
  return text;
}

TEST(Manifest, LoadsTinySd) {
  Manifest m = load_manifest(test::tiny_sd());
  EXPECT_EQ(m.format_version, 1);
  EXPECT_EQ(m.device, "cpu");
  EXPECT_EQ(m.dtype, "float32");
  EXPECT_EQ(m.tokenizer.vocab, "tokenizer/vocab.json");
  EXPECT_EQ(m.tokenizer.bos_id, 49406);
  EXPECT_EQ(m.tokenizer.pad_id, 49407);
  EXPECT_EQ(m.tokenizer.max_length, 77);
  EXPECT_EQ(m.text_encoder.hidden_size, 32);
  EXPECT_EQ(m.unet.sample_size, 8);
  EXPECT_EQ(m.vae.scale_factor, 8);
  EXPECT_DOUBLE_EQ(m.vae.scaling_factor, 0.18215);
  EXPECT_EQ(m.vae.encoder, "vae_encoder.pt");
  EXPECT_EQ(m.native_size(), 64);
  EXPECT_EQ(m.noise_schedule.num_train_timesteps, 1000);
  EXPECT_DOUBLE_EQ(m.noise_schedule.beta_end, 0.012);
  EXPECT_EQ(m.noise_schedule.prediction_type, PredictionType::kEpsilon);
}

TEST(Manifest, MissingFieldNamesFieldAndFile) {
  expect_error(replace(tiny_manifest_text(), "\"sample_size\": 8,", ""), "model.json: field 'unet.sample_size' is missing");
}

TEST(Manifest, MistypedFieldNamesField) {
  expect_error(replace(tiny_manifest_text(), "\"hidden_size\": 32", "\"hidden_size\": \"32\""),
               "field 'text_encoder.hidden_size' must be an integer");
  expect_error(replace(tiny_manifest_text(), "\"scaling_factor\": 0.18215", "\"scaling_factor\": null"),
               "field 'vae.scaling_factor' must be a number");
  expect_error(replace(tiny_manifest_text(), "\"prediction_type\": \"epsilon\"", "\"prediction_type\": \"sample\""),
               "field 'noise_schedule.prediction_type' is \"sample\"");
}

TEST(Manifest, VPredictionAndPadIdAreRead) {
  std::string text = replace(tiny_manifest_text(), "\"prediction_type\": \"epsilon\"", "\"prediction_type\": \"v_prediction\"");
  text = replace(text, "\"pad_id\": 49407", "\"pad_id\": 0");
  Manifest m = parse_manifest(text, "model.json");
  EXPECT_EQ(m.noise_schedule.prediction_type, PredictionType::kVPrediction);
  EXPECT_EQ(m.tokenizer.pad_id, 0);
}

TEST(Manifest, CorruptAndNewerAreRefused) {
  expect_error("{\"format_version\": 1,", "not valid JSON");
  expect_error("[1, 2]", "JSON object");
  expect_error(replace(tiny_manifest_text(), "\"format_version\": 1", "\"format_version\": 99"), "newer than this sdinterp reads");
}

TEST(Manifest, MismatchedSizesAreRefused) {
  expect_error(replace(tiny_manifest_text(), "\"cross_attention_dim\": 32", "\"cross_attention_dim\": 768"),
               "does not match unet.cross_attention_dim");
}

TEST(Manifest, MissingBundleFolder) {
  try {
    load_manifest("/nonexistent/bundle");
    FAIL();
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("bundle folder not found"), std::string::npos);
  }
}

}  // namespace
}  // namespace sdinterp
