// Loading libsdinterp_codecs.so (src/codecs/codecs.h) when a WebP or MP4 sink is first asked for.
#include <dlfcn.h>
#include <unistd.h>

#include <climits>
#include <string>
#include <vector>

#include "sdinterp/errors.h"
#include "sinks/sinks.h"

namespace sdinterp::sinks {
namespace {

using Factory = FrameSink* (*)(const char*, const std::string&, const FrameSinkOptions&);

// Beside the running executable (an installed sdinterp), else where this build put it (tests and
// tools run from the build tree).
std::vector<std::string> module_candidates() {
  std::vector<std::string> paths;
  char exe[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n > 0) {
    std::string path(exe, static_cast<size_t>(n));
    paths.push_back(path.substr(0, path.rfind('/')) + "/libsdinterp_codecs.so");
  }
#ifdef SDINTERP_CODECS_MODULE
  paths.push_back(SDINTERP_CODECS_MODULE);
#endif
  return paths;
}

// The factory, or the reason there is none. Loaded once; never unloaded.
struct Module {
  Factory factory = nullptr;
  std::string error;
};

Module load_module() {
  Module module;
  for (const std::string& path : module_candidates()) {
    void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      const char* why = ::dlerror();
      if (module.error.empty() && ::access(path.c_str(), F_OK) == 0) module.error = why != nullptr ? why : path;
      continue;
    }
    module.factory = reinterpret_cast<Factory>(::dlsym(handle, "sdinterp_codecs_make_sink"));
    if (module.factory != nullptr) return module;
    module.error = path + " is from another build of sdinterp";
  }
  if (module.error.empty()) module.error = "libsdinterp_codecs.so not found beside the executable";
  return module;
}

}  // namespace

std::unique_ptr<FrameSink> make_codec_sink(const std::string& kind, const std::string& path,
                                           const FrameSinkOptions& options) {
  static const Module module = load_module();
  if (module.factory == nullptr) {
    throw Error(kExitInternal, "cannot write " + path + ": WebP and MP4 output need the codec library (" + module.error +
                                   "); rebuild with scripts/build.sh");
  }
  FrameSink* sink = module.factory(kind.c_str(), path, options);
  if (sink == nullptr) throw Error(kExitInternal, "the codec library has no " + kind + " sink");
  return std::unique_ptr<FrameSink>(sink);
}

}  // namespace sdinterp::sinks
