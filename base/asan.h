// TQ_ASAN is defined (as 1) when this file is compiled with AddressSanitizer.
// g++ says so with __SANITIZE_ADDRESS__, clang (before 17) only through
// __has_feature; the sanitized test build uses clang, the others g++.
#pragma once

#if defined(__SANITIZE_ADDRESS__)
#define TQ_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TQ_ASAN 1
#endif
#endif
