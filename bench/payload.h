// PayloadMaker: job bodies of a fixed size, printable, with no spaces or line
// ends (tq's payload is the rest of a text line), each unique because it
// starts with the job's number (redis acks by payload, so two equal payloads
// in flight would be indistinguishable). Writing one is a copy of a prepared
// filler and a few digits: no allocation per job.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace tq::bench {

class PayloadMaker {
 public:
  explicit PayloadMaker(size_t size);

  size_t size() const { return filler_.size(); }

  // Fills `scratch` (resized once to size()) with the payload of job `number`
  // and returns a view of it.
  std::string_view make(std::string& scratch, uint64_t number) const;

 private:
  std::string filler_;
};

}  // namespace tq::bench
