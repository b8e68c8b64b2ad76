// Whole-or-nothing outputs for the frame sinks: everything is written under a hidden temporary
// name in the destination folder (same file system, so the final rename is atomic) and only
// renamed into place by commit(). Destruction without commit() removes the temporary.
#pragma once

#include <sys/types.h>

#include <string>

namespace sdinterp::io {

// Writes all of `data` to `fd`, retrying short writes and EINTR. IoError naming `path` on a failure
// (a full disk: "No space left on device", a size limit: "File too large").
void write_all(int fd, const void* data, size_t size, const std::string& path);
// The same at `offset` (pwrite), and reading `size` bytes back from `offset` (pread); an error
// starts with `failure` ("cannot keep frames for --boomerang").
void write_all_at(int fd, const void* data, size_t size, off_t offset, const std::string& failure);
void read_all_at(int fd, void* data, size_t size, off_t offset, const std::string& failure);

// Writes `data` as the whole file `path` (created or truncated), flushed to the disk (fsync) and
// closed, every step checked: IoError on any failure, and then the file may be partial (it is a
// temporary of the caller's).
void write_file(const std::string& path, const void* data, size_t size);
// The whole of the file at `path`. Throws std::system_error with the system's error code when it
// cannot be opened or read: std::errc::is_a_directory for a folder, which a stream would instead
// read as empty or fail on from inside libstdc++.
std::string read_file(const std::string& path);

// The temporaries of unfinished outputs are listed, so that a second Ctrl-C or SIGTERM, which ends
// the process at once, still removes them from its signal handler. Each copy of this library
// (the executable's, the runtime module's) lists them in the list given here: the process's one,
// the executable's. A full list (64) only means that one temporary is not listed.
struct TemporaryList {
  int (*add)(const char* path, bool folder);  // a slot, or -1
  void (*remove)(int slot);
};
// This copy's own list, for the executable to hand to the runtime module.
const TemporaryList& own_temporary_list();
// The list this copy uses (its own unless use_temporary_list gave another), to hand on to the
// codec module.
const TemporaryList& current_temporary_list();
void use_temporary_list(const TemporaryList& list);
// Removes every listed temporary (a file, or a folder and the files in it). Async-signal-safe.
void remove_listed_temporaries();

// A new hidden file or folder beside `path`: "." + its file name + `infix` + the six characters
// mkstemp/mkdtemp choose ("out/.walk.gif.tmp-a1B2c3"). A file comes with its open descriptor
// (fd is -1 for a folder). IoError naming `path` when its folder refuses it.
struct Temporary {
  std::string name;
  int fd = -1;
};
Temporary create_temporary_beside(const std::string& path, const std::string& infix, bool folder);

// Removes the hidden temporaries (".NAME.tmp-XXXXXX") that an earlier run writing `path` left
// behind (killed by SIGKILL, a power cut): those no live process holds (a lock on each says so).
// Returns how many were removed.
int remove_stale_temporaries(const std::string& path);

// Throws IoError if `path` is a folder, or (telling to pass --overwrite) if it exists and overwriting
// is not allowed.
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
  int lock_fd_ = -1;  // holds a lock on the temporary while this object lives (see remove_stale_temporaries)
  int listed_ = -1;
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
  int lock_fd_ = -1;
  int listed_ = -1;
  bool done_ = false;
};

// Lower-cased extension of `path` including the dot ("" if none).
std::string lower_extension(const std::string& path);

}  // namespace sdinterp::io
