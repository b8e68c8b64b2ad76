// Loading libsdinterp_codecs.so (src/codecs/codecs.h) when a WebP or MP4 sink is first asked for.
#include <string>
#include <vector>

#include "io/atomic_output.h"
#include "io/module_loader.h"
#include "sdinterp/errors.h"
#include "sinks/sinks.h"

namespace sdinterp::sinks {

std::unique_ptr<FrameSink> make_codec_sink(const std::string& kind, const std::string& path,
                                           const FrameSinkOptions& options) {
  using Factory = FrameSink* (*)(const char*, const std::string&, const FrameSinkOptions&, const io::TemporaryList*);
  // Beside the running executable (an installed sdinterp), else where this build put it (tests
  // and tools run from the build tree).
  static const io::ModuleSymbol module = io::load_module_symbol("libsdinterp_codecs.so",
#ifdef SDINTERP_CODECS_MODULE
                                                                {SDINTERP_CODECS_MODULE},
#else
                                                                {},
#endif
                                                                "sdinterp_codecs_make_sink");
  if (module.address == nullptr) {
    throw Error(kExitInternal, "cannot write " + path + ": WebP and MP4 output need the codec library (" +
                                   module.error + "); rebuild with scripts/build.sh");
  }
  // The module's own copy of the sinks lists its temporaries where this one does (the process's list).
  FrameSink* sink =
      reinterpret_cast<Factory>(module.address)(kind.c_str(), path, options, &io::current_temporary_list());
  if (sink == nullptr) throw Error(kExitInternal, "the codec library has no " + kind + " sink");
  return std::unique_ptr<FrameSink>(sink);
}

}  // namespace sdinterp::sinks
