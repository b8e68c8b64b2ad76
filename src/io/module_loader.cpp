#include "io/module_loader.h"

#include <dlfcn.h>
#include <unistd.h>

#include <climits>

namespace sdinterp::io {

ModuleSymbol load_module_symbol(const std::string& file_name, const std::vector<std::string>& fallbacks,
                                const char* symbol) {
  std::vector<std::string> candidates;
  char exe[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n > 0) {
    std::string path(exe, static_cast<size_t>(n));
    candidates.push_back(path.substr(0, path.rfind('/')) + "/" + file_name);
  }
  candidates.insert(candidates.end(), fallbacks.begin(), fallbacks.end());

  ModuleSymbol found;
  for (const std::string& path : candidates) {
    if (::access(path.c_str(), F_OK) != 0) continue;
    void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      const char* why = ::dlerror();
      if (found.error.empty()) found = {nullptr, path, why != nullptr ? why : path + " cannot be loaded"};
      continue;
    }
    if (void* address = ::dlsym(handle, symbol)) return {address, path, ""};
    if (found.error.empty()) found = {nullptr, path, path + " is from another build of sdinterp"};
  }
  if (found.error.empty()) {
    found.path = candidates.empty() ? file_name : candidates.front();
    found.error = file_name + " not found beside the executable";
  }
  return found;
}

}  // namespace sdinterp::io
