# Suites for libflexpage and the flexpage command.  Included by
# tests/CMakeLists.txt, which defines flexpage_test().

# Shared helpers: temporary directories, data generator, an independent
# CRC-32C, byte-level image access, running a program.
add_library(flexpage_testutil STATIC ${CMAKE_CURRENT_SOURCE_DIR}/testutil.c)
target_include_directories(flexpage_testutil PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_compile_definitions(flexpage_testutil PRIVATE FLEXPAGE_BUILD_DIR="${CMAKE_BINARY_DIR}")

# The image format at library level: writer, validation, payload checks.
flexpage_test(test_format test_format.c)
target_link_libraries(test_format PRIVATE flexpage_pager flexpage_testutil)

# The flexpage command, run as a program (pack, inspect, cat).
flexpage_test(test_cli test_cli.c)
target_link_libraries(test_cli PRIVATE flexpage_pager flexpage_testutil)
target_compile_definitions(test_cli PRIVATE FLEXPAGE_PROJECT_VERSION="${PROJECT_VERSION}")
add_dependencies(test_cli flexpage)
