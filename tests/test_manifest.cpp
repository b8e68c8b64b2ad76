#include <gtest/gtest.h>
#include <fstream>

#include "bundle/weights_header.h"
#include "sdinterp/errors.h"
#include "sdinterp/manifest.h"
#include "test_support.h"

namespace sdinterp {
namespace {

// tiny-sd's manifest in the format version 1 of the golden data (as models/tiny-sd had it before it
// was re-exported by scripts/export_bundle.py): the base the field tests edit.
std::string tiny_manifest_text() { return test::read_text(test::golden("model_v1.json")); }

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

TEST(Manifest, ReadsVersion1) {
  Manifest m = parse_manifest(tiny_manifest_text(), "model.json");
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
  // Version 1 has no attention or source fields: the golden bundle was traced with classic attention.
  EXPECT_EQ(m.attention, "classic");
  EXPECT_EQ(m.source.model, "");
  EXPECT_EQ(m.export_command("cpu", "float32"), "scripts/export_bundle.py MODEL OUT_DIR --device cpu --dtype float32");
  // Nor the UNet's size limit: 0 until the bundle derives it from the traced module.
  EXPECT_EQ(m.unet.latent_multiple, 0);
  EXPECT_EQ(parse_manifest(replace(tiny_manifest_text(), "\"cross_attention_dim\": 32",
                                   "\"cross_attention_dim\": 32, \"latent_multiple\": 2"),
                           "model.json")
                .unet.latent_multiple,
            2);
}

TEST(Manifest, LoadsTinySd) {
  // models/tiny-sd is scripts/export_bundle.py's output (models/README.md says how it is made).
  Manifest m = load_manifest(test::tiny_sd());
  EXPECT_EQ(m.format_version, 3);
  EXPECT_TRUE(m.weights_beside());
  EXPECT_EQ(m.files(),
            (std::vector<std::string>{"model.json", "tokenizer/vocab.json", "tokenizer/merges.txt", "text_encoder.pt",
                                      "text_encoder.safetensors", "unet.pt", "unet.safetensors", "vae_decoder.pt",
                                      "vae_decoder.safetensors", "vae_encoder.pt", "vae_encoder.safetensors"}));
  EXPECT_EQ((std::pair{m.device, m.dtype}), (std::pair<std::string, std::string>{"cpu", "float32"}));
  EXPECT_EQ(m.attention, "classic");
  EXPECT_EQ(m.source.kind, "folder");
  EXPECT_EQ(m.source.model, "tiny-sd-diffusers");
  EXPECT_EQ(m.unet.latent_multiple, 1);
  EXPECT_EQ(m.native_size(), 64);
  EXPECT_EQ(m.export_command("cuda", "float16"),
            "scripts/export_bundle.py tiny-sd-diffusers OUT_DIR --device cuda --dtype float16 --compat");
}

// tiny-sd's manifest as scripts/export_bundle.py writes version 2: attention and source added.
std::string v2_text() {
  std::string text = replace(tiny_manifest_text(), "\"format_version\": 1", "\"format_version\": 2");
  return replace(text, "\"dtype\": \"float32\",",
                 "\"dtype\": \"float32\", \"attention\": \"sdpa\", \"source\": {\"model\": "
                 "\"stabilityai/stable-diffusion-2-1\", \"kind\": \"hub\", \"revision\": "
                 "\"5cae40e6a2745ae2b01ad92ae5043f95f23644d6\", \"variant\": null, \"weights_sha256\": "
                 "\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\", \"weight_files\": {}},");
}

TEST(Manifest, ReadsVersion2) {
  Manifest m = parse_manifest(v2_text(), "model.json");
  EXPECT_EQ(m.format_version, 2);
  EXPECT_EQ(m.attention, "sdpa");
  EXPECT_EQ(m.source.model, "stabilityai/stable-diffusion-2-1");
  EXPECT_EQ(m.source.kind, "hub");
  EXPECT_EQ(m.source.revision, "5cae40e6a2745ae2b01ad92ae5043f95f23644d6");
  EXPECT_EQ(m.source.weights_sha256, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
  EXPECT_EQ(m.export_command("cuda", "float16"),
            "scripts/export_bundle.py stabilityai/stable-diffusion-2-1 OUT_DIR --device cuda --dtype float16");
  // Unknown fields (the exporter's "export" record, "weight_files") are left to run metadata.
  EXPECT_TRUE(m.raw["source"].contains("weight_files"));
}

TEST(Manifest, Version2NullRevisionCompatAndQuoting) {
  std::string text =
      replace(v2_text(), "\"revision\": \"5cae40e6a2745ae2b01ad92ae5043f95f23644d6\"", "\"revision\": null");
  text = replace(text, "\"attention\": \"sdpa\"", "\"attention\": \"classic\"");
  text = replace(text, "\"model\": \"stabilityai/stable-diffusion-2-1\"", "\"model\": \"my models/it's.safetensors\"");
  text = replace(text, "\"kind\": \"hub\"", "\"kind\": \"single-file\"");
  Manifest m = parse_manifest(text, "model.json");
  EXPECT_EQ(m.source.revision, "");
  EXPECT_EQ(m.source.kind, "single-file");
  EXPECT_EQ(m.export_command("cpu", "float32"),
            "scripts/export_bundle.py 'my models/it'\\''s.safetensors' OUT_DIR --device cpu --dtype float32 --compat");
}

TEST(Manifest, Version2FieldsAreRequiredAndChecked) {
  const std::string v2 = v2_text();
  expect_error(replace(v2, "\"attention\": \"sdpa\",", ""), "model.json: field 'attention' is missing");
  expect_error(replace(v2, "\"attention\": \"sdpa\"", "\"attention\": \"flash\""),
               "field 'attention' is \"flash\"; expected one of sdpa, classic");
  expect_error(replace(v2, "\"kind\": \"hub\"", "\"kind\": \"url\""), "field 'source.kind' is \"url\"");
  expect_error(replace(v2, "\"revision\": \"5cae40e6a2745ae2b01ad92ae5043f95f23644d6\"", "\"revision\": 3"),
               "field 'source.revision' must be a string or null");
  expect_error(replace(v2, "\"weights_sha256\": \"0123456789abcdef", "\"weights_sha256\": \"XYZ"),
               "field 'source.weights_sha256' must be 64 lower-case hex digits");
  expect_error(replace(v2, "\"model\": \"stabilityai/stable-diffusion-2-1\"", "\"model\": \"\""),
               "field 'source.model' is empty");
  // A version 2 manifest without a source.
  std::string no_source = v2;
  const auto start = no_source.find("\"source\"");
  const auto end = no_source.find("},", start);
  no_source.erase(start, end + 2 - start);
  expect_error(no_source, "model.json: field 'source' is missing");
}

TEST(Manifest, MissingFieldNamesFieldAndFile) {
  expect_error(replace(tiny_manifest_text(), "\"sample_size\": 8,", ""),
               "model.json: field 'unet.sample_size' is missing");
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
  std::string text =
      replace(tiny_manifest_text(), "\"prediction_type\": \"epsilon\"", "\"prediction_type\": \"v_prediction\"");
  text = replace(text, "\"pad_id\": 49407", "\"pad_id\": 0");
  Manifest m = parse_manifest(text, "model.json");
  EXPECT_EQ(m.noise_schedule.prediction_type, PredictionType::kVPrediction);
  EXPECT_EQ(m.tokenizer.pad_id, 0);
}

TEST(Manifest, CorruptAndNewerAreRefused) {
  expect_error("{\"format_version\": 1,", "not valid JSON");
  expect_error("[1, 2]", "JSON object");
  expect_error(replace(tiny_manifest_text(), "\"format_version\": 1", "\"format_version\": 99"),
               "newer than this sdinterp reads");
}

TEST(Manifest, MismatchedSizesAreRefused) {
  expect_error(replace(tiny_manifest_text(), "\"cross_attention_dim\": 32", "\"cross_attention_dim\": 768"),
               "does not match unet.cross_attention_dim");
}

std::string with_compiled(const std::string& record) {
  return replace(tiny_manifest_text(), "\"cross_attention_dim\": 32}",
                 "\"cross_attention_dim\": 32, \"compiled\": " + record + "}");
}

TEST(Manifest, CompiledUnetIsOptionalAndRead) {
  EXPECT_TRUE(parse_manifest(tiny_manifest_text(), "model.json").unet.compiled.file.empty());
  Manifest m = parse_manifest(with_compiled(R"({"kind": "aoti", "file": "unet.pt2", "batch_min": 2, "batch_max": 63,
      "latent_multiple": 4, "latent_max": 64, "compile_seconds": 12.5})"),
                              "model.json");
  const auto& c = m.unet.compiled;
  EXPECT_EQ(c.file, "unet.pt2");
  EXPECT_EQ(c.batch_min, 2);
  EXPECT_EQ(c.batch_max, 63);
  EXPECT_EQ(c.latent_multiple, 4);
  EXPECT_EQ(c.latent_max, 64);
  EXPECT_EQ(c.threads, 0);  // optional
  EXPECT_TRUE(c.accepts(2, 8, 12));
  EXPECT_TRUE(c.accepts(63, 64, 4));
  EXPECT_FALSE(c.accepts(1, 8, 8));   // below batch_min
  EXPECT_FALSE(c.accepts(64, 8, 8));  // above batch_max
  EXPECT_FALSE(c.accepts(8, 10, 8));  // not a multiple
  EXPECT_FALSE(c.accepts(8, 8, 68));  // above latent_max
  EXPECT_TRUE(c.accepts_size(8, 8));
  EXPECT_FALSE(c.accepts_size(6, 8));
  EXPECT_EQ(c.takes(8), "batch 2..63, images in steps of 32 px up to 512 px");
  Manifest none = parse_manifest(tiny_manifest_text(), "model.json");
  EXPECT_FALSE(none.unet.compiled.accepts(4, 8, 8));
}

// A package compiled for one call shape (export_bundle.py --aoti-static 60x64x64) is recorded as a
// batch range and latent multiple that take that shape only.
TEST(Manifest, CompiledUnetForOneShapeTakesThatShapeOnly) {
  Manifest m = parse_manifest(with_compiled(R"({"kind": "aoti", "file": "unet.pt2", "batch_min": 60, "batch_max": 60,
      "latent_multiple": 64, "latent_max": 64})"),
                              "model.json");
  const auto& c = m.unet.compiled;
  EXPECT_TRUE(c.accepts(60, 64, 64));
  EXPECT_FALSE(c.accepts(58, 64, 64));
  EXPECT_FALSE(c.accepts(60, 64, 56));
  EXPECT_FALSE(c.accepts(60, 128, 64));
  EXPECT_EQ(c.takes(8), "batch 60 only, images of 512x512 px only");
}

TEST(Manifest, CompiledUnetFieldsAreChecked) {
  const std::string ok =
      R"("file": "unet.pt2", "batch_min": 2, "batch_max": 63, "latent_multiple": 8, "latent_max": 128)";
  expect_error(with_compiled("{\"kind\": \"tensorrt\", " + ok + "}"), "field 'unet.compiled.kind' is \"tensorrt\"");
  expect_error(with_compiled(R"({"kind": "aoti", "file": "", "batch_min": 2, "batch_max": 63, "latent_multiple": 8,
      "latent_max": 128})"),
               "field 'unet.compiled.file' is empty");
  expect_error(with_compiled(R"({"kind": "aoti", "file": "unet.pt2", "batch_min": 8, "batch_max": 4,
      "latent_multiple": 8, "latent_max": 128})"),
               "field 'unet.compiled.batch_max' must be between 8 and");
  expect_error(with_compiled(R"({"kind": "aoti", "file": "unet.pt2", "batch_min": 2, "batch_max": 63,
      "latent_max": 128})"),
               "field 'unet.compiled.latent_multiple' is missing");
  expect_error(with_compiled("3"), "field 'unet.compiled' must be an object");
}

TEST(Manifest, CompiledVaeDecoderIsReadAsTheUnetsIs) {
  const std::string record = R"({"kind": "aoti", "file": "vae_decoder.pt2", "batch_min": 1, "batch_max": 63,
      "latent_multiple": 1, "latent_max": 128, "weights_fnv1a64": "e6576ae1d32b03b0", "tuning": "fast-diffusion"})";
  const std::string text = replace(tiny_manifest_text(), "\"scaling_factor\": 0.18215",
                                   "\"scaling_factor\": 0.18215, \"compiled\": " + record);
  Manifest m = parse_manifest(text, "model.json");
  const auto& c = m.vae.compiled;
  EXPECT_EQ(c.file, "vae_decoder.pt2");
  EXPECT_EQ(c.batch_min, 1);
  EXPECT_EQ(c.latent_multiple, 1);
  EXPECT_EQ(c.weights_fnv1a64, "e6576ae1d32b03b0");
  EXPECT_EQ(c.tuning, "fast-diffusion");
  EXPECT_TRUE(c.accepts(1, 5, 7));
  EXPECT_FALSE(c.accepts(64, 8, 8));
  EXPECT_TRUE(m.unet.compiled.file.empty());
  // The packages a bundle names, by module: the decoder's only here; both with the UNet's too.
  ASSERT_EQ(m.compiled_modules().size(), 1u);
  EXPECT_STREQ(m.compiled_modules()[0].module, "vae_decoder");
  EXPECT_EQ(m.compiled_modules()[0].record, &m.vae.compiled);
  const std::string unet_record =
      R"({"kind": "aoti", "file": "unet.pt2", "batch_min": 2, "batch_max": 63, "latent_multiple": 8, "latent_max": 128})";
  Manifest both = parse_manifest(
      replace(text, "\"cross_attention_dim\": 32}", "\"cross_attention_dim\": 32, \"compiled\": " + unet_record + "}"),
      "model.json");
  ASSERT_EQ(both.compiled_modules().size(), 2u);
  EXPECT_STREQ(both.compiled_modules()[0].module, "unet");
  EXPECT_STREQ(both.compiled_modules()[1].module, "vae_decoder");
  EXPECT_TRUE(parse_manifest(tiny_manifest_text(), "model.json").compiled_modules().empty());
  // Its fields are checked by the same reader, named by where they are.
  expect_error(replace(text, "\"file\": \"vae_decoder.pt2\"", "\"file\": \"\""), "field 'vae.compiled.file' is empty");
  expect_error(
      replace(tiny_manifest_text(), "\"scaling_factor\": 0.18215", "\"scaling_factor\": 0.18215, \"compiled\": []"),
      "field 'vae.compiled' must be an object");
}

TEST(Manifest, MissingBundleFolder) {
  try {
    load_manifest("/nonexistent/bundle");
    FAIL();
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("bundle folder not found"), std::string::npos);
  }
}

TEST(Manifest, AFolderOrFileThatIsNoBundleIsCalledSo) {
  test::TempDir dir;
  auto error_of = [](const std::string& bundle) {
    try {
      load_manifest(bundle);
    } catch (const ModelError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(error_of(dir.str()),
            dir.str() + " is not a bundle: it has no model.json (scripts/export_bundle.py makes one)");
  std::ofstream(dir / "model.json") << "{}";
  EXPECT_EQ(error_of(dir / "model.json"),
            dir / "model.json" + " is a file; a bundle is a folder: give the one that holds it (" + dir.str() + ")");
  std::ofstream(dir / "job.json") << "{}";
  EXPECT_EQ(error_of(dir / "job.json"), dir / "job.json" + " is a file; a bundle is a folder with model.json");
}

TEST(WeightsHeader, TheFuzzersSeedParses) {
  // fuzz/seeds/weights_header_fuzz/small.safetensors, written by scripts/bundle_weights.write_weights.
  const std::string file =
      test::read_text(std::string(SDINTERP_SOURCE_DIR) + "/fuzz/seeds/weights_header_fuzz/small.safetensors");
  const auto* bytes = reinterpret_cast<const unsigned char*>(file.data());
  const WeightsHeader h = parse_weights_header(bytes, file.size(), "small.safetensors");
  EXPECT_EQ(h.data_start % 256, 0u);
  ASSERT_EQ(h.weights.size(), 4u);  // the padding left out
  const WeightEntry& w = h.weights.at("conv.weight");
  EXPECT_EQ(w.dtype, WeightDtype::kF16);
  EXPECT_EQ(w.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(w.begin, 0u);
  EXPECT_EQ(w.end, 12u);
  EXPECT_EQ(h.weights.at("scale").shape, std::vector<int64_t>{});
  EXPECT_EQ(h.weights.at("mask").dtype, WeightDtype::kBool);
  // Cut short: the last weight's data lie outside the file.
  try {
    parse_weights_header(bytes, file.size() - 1, "small.safetensors");
    FAIL() << "a truncated file parsed";
  } catch (const ModelError& e) {
    EXPECT_STREQ(e.what(),
                 "small.safetensors: weight \"mask\": its data lie outside the file (truncated?) (the bundle is "
                 "corrupt; re-export it)");
  }
  EXPECT_THROW(parse_weights_header(bytes, 7, "small.safetensors"), ModelError);
}

}  // namespace
}  // namespace sdinterp
