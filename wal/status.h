// Errors as values in the log library: nothing in wal/ throws. A Status is
// ok, or a code and a message that names the file (and offset) concerned.
#pragma once

#include <string>
#include <utility>

#include "base/expected.h"

namespace tq::wal {

class [[nodiscard]] Status {
 public:
  enum class Code {
    kOk,
    kIoError,
    kNoSpace,
    kCorruption,
    kLocked,
    kInvalidArgument,
    kExists,
    kNotFound
  };

  Status() = default;
  static Status io_error(std::string msg) { return Status(Code::kIoError, std::move(msg)); }
  static Status no_space(std::string msg) { return Status(Code::kNoSpace, std::move(msg)); }
  static Status corruption(std::string msg) { return Status(Code::kCorruption, std::move(msg)); }
  static Status locked(std::string msg) { return Status(Code::kLocked, std::move(msg)); }
  static Status invalid(std::string msg) { return Status(Code::kInvalidArgument, std::move(msg)); }
  static Status exists(std::string msg) { return Status(Code::kExists, std::move(msg)); }
  static Status not_found(std::string msg) { return Status(Code::kNotFound, std::move(msg)); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  Status(Code code, std::string msg) : code_(code), message_(std::move(msg)) {}
  Code code_ = Code::kOk;
  std::string message_;
};

template <typename T>
using Result = Expected<T, Status>;

}  // namespace tq::wal
