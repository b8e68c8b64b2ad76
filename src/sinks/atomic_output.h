// Whole-or-nothing outputs for the frame sinks: everything is written under a hidden temporary
// name in the destination folder (same file system, so the final rename is atomic) and only
// renamed into place by commit(). Destruction without commit() removes the temporary.
#pragma once

#include <string>

namespace sdinterp::sinks {

// Throws IoError (telling to pass --overwrite) if `path` exists and overwriting is not allowed.
void check_can_write(const std::string& path, bool overwrite);

// A temporary file beside `path`; commit() renames it onto `path`.
class AtomicFile {
 public:
  AtomicFile(const std::string& path, bool overwrite);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  const std::string& temp_path() const { return temp_path_; }
  const std::string& path() const { return path_; }
  // An open descriptor on the temporary (for libraries that write through a fd or FILE*).
  int fd() const { return fd_; }
  // Closes the descriptor (a library may have closed it already: then pass false).
  void close_fd(bool still_open = true);
  // Renames the temporary onto path(); without overwrite, fails instead of replacing a file
  // that appeared meanwhile.
  void commit();
  // Removes the temporary; no-op after commit().
  void discard();

 private:
  std::string path_;
  std::string temp_path_;
  bool overwrite_;
  int fd_ = -1;
  bool done_ = false;
};

// A temporary folder beside `dir`; commit() moves its files into `dir`.
class AtomicDir {
 public:
  AtomicDir(const std::string& dir, bool overwrite);
  ~AtomicDir();
  AtomicDir(const AtomicDir&) = delete;
  AtomicDir& operator=(const AtomicDir&) = delete;

  const std::string& temp_dir() const { return temp_dir_; }
  // Moves every file of the temporary folder into dir (creating it if needed). With
  // overwrite, files named like `stale_prefix`* that were not just written are removed so the
  // folder holds exactly one result.
  void commit(const std::string& stale_prefix);
  void discard();

 private:
  std::string dir_;
  std::string temp_dir_;
  bool overwrite_;
  bool done_ = false;
};

// Lower-cased extension of `path` including the dot ("" if none).
std::string lower_extension(const std::string& path);

}  // namespace sdinterp::sinks
