// A job's files on disk: where its metadata goes, and whether a job is already done. Shared by
// the CLI (batch --skip-existing) and the runtime (which writes the metadata).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "sdinterp/config.h"

namespace sdinterp {

// One text for every way of writing a path to the same file or folder (relative or absolute, "./",
// "..", a trailing slash, links in the part that exists), whether it exists yet or not.
std::string path_key(const std::string& path);

// Where a job's metadata goes: OUTPUT.json beside -o OUTPUT, else DIR.json beside --png-dir DIR.
std::string metadata_path(const RunConfig& config);

// ".META.publishing" beside the metadata META: present while a run publishes the job's outputs
// (and after a run killed meanwhile), listing them (src/runtime/execute.cpp).
std::string publish_marker_path(const std::string& meta);

// Where a failed batch job leaves its error record: OUTPUT.error.json (DIR.error.json), a small
// JSON object {"source", "message", "exit_code", "time"}; removed when the job later succeeds.
std::string error_record_path(const RunConfig& config);

// True when `config`'s outputs and metadata exist and the metadata records the same job (every
// key the job line sets explicitly, `explicit_keys`, has the same value).
bool job_already_done(const RunConfig& config, const nlohmann::json& explicit_keys);

}  // namespace sdinterp
