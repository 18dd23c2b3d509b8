// The client tests' main: doctest's own (see tests/client/CMakeLists.txt for
// what the executable holds).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
