# What the fuzz harnesses (fuzz/) found, each input fed to its reader again.
# Included by tests/CMakeLists.txt, which defines flexpage_test().
flexpage_test(test_fuzz_found cli_util.c test_fuzz_found.c)
target_link_libraries(test_fuzz_found PRIVATE flexpage_pager flexmodel flexpage_runtime
  flexpage_testutil)
target_compile_definitions(test_fuzz_found PRIVATE FLEXPAGE_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
add_dependencies(test_fuzz_found flexpage)
