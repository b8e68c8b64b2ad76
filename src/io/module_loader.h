// Modules built beside the sdinterp executable (the model runtime, the WebP/MP4 codecs), loaded
// with dlopen on first use and never unloaded.
#pragma once

#include <string>
#include <vector>

namespace sdinterp::io {

struct ModuleSymbol {
  void* address = nullptr;  // null when not found
  std::string path;         // the module it came from, or the one that failed
  std::string error;        // why not, when address is null
};

// `symbol` from the first of `file_name` beside the running executable, then `fallbacks` (full
// paths), that loads; a candidate that does not exist is skipped quietly, one that fails to load
// or lacks the symbol gives the error. Opened with RTLD_LOCAL unless SDINTERP_DLOPEN=global (a
// diagnostic; any other value but local throws ConfigError).
ModuleSymbol load_module_symbol(const std::string& file_name, const std::vector<std::string>& fallbacks,
                                const char* symbol);

}  // namespace sdinterp::io
