// Names of targets and phases for reports, and each target's usual port.
#include "bench/options.h"

namespace tq::bench {

const char* target_name(Target target) {
  switch (target) {
    case Target::kTq:
      return "tq";
    case Target::kBeanstalkd:
      return "beanstalkd";
    case Target::kRedis:
      return "redis";
  }
  return "?";
}

const char* phase_name(Phase phase) {
  switch (phase) {
    case Phase::kProduce:
      return "produce";
    case Phase::kConsume:
      return "consume";
    case Phase::kMixed:
      return "mixed";
    case Phase::kReplay:
      return "replay";
    case Phase::kStall:
      return "stall";
  }
  return "?";
}

uint16_t default_port(Target target) {
  switch (target) {
    case Target::kTq:
      return 8080;
    case Target::kBeanstalkd:
      return 11300;
    case Target::kRedis:
      return 6379;
  }
  return 0;
}

}  // namespace tq::bench
