# Suites for libflexpage and the flexpage command.  Included by
# tests/CMakeLists.txt, which defines flexpage_test().

# Shared helpers: temporary directories, data generator, an independent
# CRC-32C, byte-level image access, running a program.
add_library(flexpage_testutil STATIC ${CMAKE_CURRENT_SOURCE_DIR}/testutil.c)
target_include_directories(flexpage_testutil PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_compile_definitions(flexpage_testutil PRIVATE FLEXPAGE_BUILD_DIR="${CMAKE_BINARY_DIR}")

# The image format at library level, a file per feature: round trip, header
# and table validation, payload checks, writer misuse, random corruption.
flexpage_test(test_format format_util.c test_format_roundtrip.c test_format_header.c
  test_format_tables.c test_format_payload.c test_format_writer.c test_format_fuzz.c)
target_link_libraries(test_format PRIVATE flexpage_pager flexpage_testutil)

# The flexpage command, run as a program (pack, inspect, cat).
flexpage_test(test_cli cli_util.c test_cli_pack_cat.c test_cli_inspect.c test_cli_pack_safety.c
  test_cli_usage.c test_cli_checkpoint.c)
target_link_libraries(test_cli PRIVATE flexpage_pager flexpage_testutil)
target_compile_definitions(test_cli PRIVATE FLEXPAGE_PROJECT_VERSION="${PROJECT_VERSION}")
add_dependencies(test_cli flexpage)

# The exported symbols: fp_ for the public API only, pg_ for the rest.
flexpage_test(test_symbols test_symbols.c)
target_link_libraries(test_symbols PRIVATE flexpage_testutil)
add_dependencies(test_symbols flexpage_pager)
target_compile_definitions(test_symbols PRIVATE
  FLEXPAGE_PAGER_LIB="$<TARGET_FILE:flexpage_pager>"
  FLEXPAGE_INCLUDE="${CMAKE_SOURCE_DIR}/pager/include"
  FLEXPAGE_GENERATED_INCLUDE="${CMAKE_BINARY_DIR}/pager/include")
