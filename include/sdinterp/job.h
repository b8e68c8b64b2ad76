// Job files: one run described in JSON with the CLI's flag names ("step-size", "png-dir", ...).
// The run metadata written next to every output is a job file too (plus an "sdinterp" object
// that is read back as information only), so feeding it to `sdinterp run` repeats the run.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "sdinterp/config.h"

namespace sdinterp {

// How a job key is given on the command line.
enum class FlagKind {
  kText,      // --KEY TEXT
  kTexts,     // --KEY TEXT, repeated
  kNumber,    // --KEY N, read strictly by flag_value (the range of numeric_options())
  kSwitch,    // --KEY
  kKeyframes  // --keyframe TEXT, repeated, read by keyframe_flag_value
};

// One job key, the one place that describes it. apply_job, job_to_json (metadata), the flags of
// generate/run/batch and their --help, key suggestions and metadata's relative paths are all made
// from job_key_table(): adding a key is adding a row (src/job.cpp) plus the code that uses it.
struct JobKey {
  std::string key;   // as job files and metadata write it
  std::string flag;  // the CLI11 names when not "--" + key ("-o,--output", "--keyframe"), else ""
  FlagKind kind;
  std::string help;  // the flag's help; a numeric key's range is added from numeric_options()
  // Reads a job value (ConfigError naming `source` and the key); writes the config's value as a
  // job records it (null: not recorded, as "overwrite"); for path keys, the config's paths.
  std::function<void(const nlohmann::json&, RunConfig&, const std::string& source)> read;
  std::function<nlohmann::json(const RunConfig&)> write;
  std::function<std::vector<std::string*>(RunConfig&)> paths;
};
const std::vector<JobKey>& job_key_table();

// The job keys (the generate flags' names), in the table's order: apply_job takes these (and
// "sdinterp", and keys starting with _, which are comments), and suggests the nearest for any other.
const std::vector<std::string>& job_keys();

// Applies the keys of a JSON object onto `config` (keys absent keep their value). Throws
// ConfigError naming `source` ("" for the command line) and the key for an unknown key or a
// mistyped value.
void apply_job(const nlohmann::json& job, RunConfig& config, const std::string& source);
// A numeric flag's text (a key of numeric_options(), or "seed") as the job value it stands for,
// read strictly: "12", "0.5", "1e3"; ConfigError naming the option and what it takes otherwise
// ("--steps takes a whole number from 1 to 1000, not \"ten\"").
nlohmann::json flag_value(const std::string& key, const std::string& text);
// A --keyframe flag's text as the keyframe object it stands for: "FRAME[,seed=N][,ease=NAME]
// [,negative=TEXT]:PROMPT" (the prompt is everything after the first colon), or a JSON object.
nlohmann::json keyframe_flag_value(const std::string& text);
// Parses job text that must be one JSON object (comments // and /* */ allowed). Throws ConfigError
// naming `source` and, for a syntax error, the line and column ("jobs.jsonl:3:14: not valid JSON:
// ..."); `first_line` is the text's line in the file (batch lines), 0 for a whole file.
nlohmann::json parse_job_object(std::string_view text, const std::string& source, int first_line = 0);
// Parses job text (one JSON object) onto defaults.
RunConfig parse_job(std::string_view text, const std::string& source);

// Whether `text` is well-formed UTF-8 (no overlong forms, surrogates or cut sequences).
bool is_utf8(std::string_view text);
// A text (prompt, path, ...) as a job records it: a JSON string when it is UTF-8, else
// {"bytes": "<hex of every byte>"}, which apply_job reads back to the same bytes (JSON strings
// are UTF-8; a prompt or a file name may be any bytes).
nlohmann::json text_json(const std::string& text);
// The bytes of a text_json value (a string or {"bytes": HEX}); false for anything else.
bool text_from_json(const nlohmann::json& value, std::string& text);

// The job keys that are paths: "bundle", "output", "png-dir", "image".
const std::vector<std::string>& job_path_keys();
// Run metadata (a job with an "sdinterp" object) records its paths relative to its own folder
// (a path given absolute stays absolute), so that `sdinterp run DIR/a.gif.json` repeats the run
// from any working directory. These turn the paths of a job read from the metadata file
// `metadata_path` into paths from the working directory, and back for writing.
void resolve_metadata_paths(RunConfig& config, const std::string& metadata_path);
void relativize_metadata_paths(nlohmann::json& job, const RunConfig& config, const std::string& metadata_path);
// Whether `job` is run metadata (it carries the "sdinterp" object).
bool is_run_metadata(const nlohmann::json& job);

// Every parameter of `config`, defaults included, with the CLI's names.
nlohmann::json job_to_json(const RunConfig& config);

}  // namespace sdinterp
