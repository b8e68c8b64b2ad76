// A job's files on disk: where its metadata goes, and whether a job is already done. Shared by
// the CLI (batch --skip-existing) and the runtime (which writes the metadata).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "sdinterp/config.h"

namespace sdinterp::cli {

// Where a job's metadata goes: OUTPUT.json beside -o OUTPUT, else DIR.json beside --png-dir DIR.
std::string metadata_path(const RunConfig& config);

// True when `config`'s outputs and metadata exist and the metadata records the same job (every
// key the job line sets explicitly, `explicit_keys`, has the same value).
bool job_already_done(const RunConfig& config, const nlohmann::json& explicit_keys);

}  // namespace sdinterp::cli
