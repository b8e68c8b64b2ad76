// Project error types and the exit statuses they map to. Every error that reaches the user
// is one of these, caught once in main and printed as one line.
#pragma once

#include <stdexcept>
#include <string>

namespace sdinterp {

// Documented exit statuses (README "Exit statuses").
enum ExitCode : int {
  kExitOk = 0,
  kExitInternal = 1,       // a bug, a LibTorch error, or the runtime library missing
  kExitUsage = 2,          // bad flags, bad values, bad job file
  kExitModel = 3,          // missing, corrupt or mismatched bundle
  kExitIo = 4,             // cannot read input or write output
  kExitOutOfMemory = 5,    // out of memory (the GPU's, or the machine's on the CPU)
  kExitBatchFailures = 6,  // `batch`: at least one job failed (the others ran)
  kExitInterrupted = 130,
};

class Error : public std::runtime_error {
 public:
  Error(ExitCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ExitCode code() const { return code_; }

 private:
  ExitCode code_;
};

// A value given by the user (flag, job file, prompt) is invalid.
class ConfigError : public Error {
 public:
  explicit ConfigError(const std::string& message) : Error(kExitUsage, message) {}
};

// The model bundle is missing, corrupt, or made for another device/dtype.
class ModelError : public Error {
 public:
  explicit ModelError(const std::string& message) : Error(kExitModel, message) {}
};

// A file the bundle's manifest names is not there.
inline ModelError missing_bundle_file(const std::string& path) {
  return ModelError(path + ": missing bundle file (the bundle is incomplete; re-export it)");
}

// A file could not be read or written.
class IoError : public Error {
 public:
  explicit IoError(const std::string& message) : Error(kExitIo, message) {}
};

class OutOfMemoryError : public Error {
 public:
  explicit OutOfMemoryError(const std::string& message) : Error(kExitOutOfMemory, message) {}
};

class InterruptedError : public Error {
 public:
  InterruptedError() : Error(kExitInterrupted, "interrupted") {}
};

}  // namespace sdinterp
