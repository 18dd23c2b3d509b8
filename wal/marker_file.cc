#include "wal/marker_file.h"

namespace tq::wal {

Status write_marker_file(FileSystem& fs, const std::string& dir, const char* name,
                         std::string_view contents) {
  const std::string path = dir + "/" + name;
  auto file = fs.open_for_write(path, false, 0);
  const bool created = !file;
  if (created) file = fs.open_for_write(path, true, 0);
  if (!file) return file.error();
  Status s = (*file)->write_at(0, contents);
  if (s.ok()) s = (*file)->sync();
  Status closed = (*file)->close();
  if (s.ok()) s = closed;
  if (s.ok() && created) s = fs.sync_dir(dir);
  return s;
}

std::optional<std::string> read_marker_text(FileSystem& fs, const std::string& dir,
                                            const char* name) {
  uint64_t size = 0;
  auto bytes = fs.read_file(dir + "/" + name, &size);
  if (!bytes) return std::nullopt;
  std::string_view text = (*bytes)->bytes();
  while (!text.empty() && (text.back() == ' ' || text.back() == '\n')) text.remove_suffix(1);
  return std::string(text);
}

Status remove_marker_file(FileSystem& fs, const std::string& dir, const char* name) {
  if (Status s = fs.remove(dir + "/" + name); !s.ok()) return s;
  return fs.sync_dir(dir);
}

}  // namespace tq::wal
