# The preload library (pager/preload) under real programs: the probe of the
# mappings it must take and must not (test_preload_mappings), llama2.c's
# run.c (test_preload_llama2c) and llama.cpp's prebuilt libllama through a
# small driver (test_preload_llama).  The peers are fetched from the npm
# registry, built and cached by the set-up test preload_setup
# (tests/preload/setup.sh), which ctest runs first.
add_executable(preload_probe preload/map_probe.c)
target_link_libraries(preload_probe PRIVATE Threads::Threads)

add_test(NAME preload_setup
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/preload/setup.sh ${CMAKE_SOURCE_DIR}
          ${CMAKE_BINARY_DIR}/tests/preload ${CMAKE_C_COMPILER} $<TARGET_FILE:flexpage>)
set_tests_properties(preload_setup PROPERTIES FIXTURES_SETUP preload_peers TIMEOUT 900)

# Under ASan (TSan) the sanitizer runtimes are preloaded before the library.
set(sanitizer_preload "")
set(sanitizer_runtimes "")
if(FLEXPAGE_SANITIZE)
  set(sanitizer_runtimes libasan.so libubsan.so)
elseif(FLEXPAGE_TSAN)
  set(sanitizer_runtimes libtsan.so)
endif()
if(sanitizer_runtimes)
  foreach(rt ${sanitizer_runtimes})
    execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=${rt}
                    OUTPUT_VARIABLE rt_path OUTPUT_STRIP_TRAILING_WHITESPACE)
    string(APPEND sanitizer_preload "${rt_path}:")
  endforeach()
endif()

foreach(suite test_preload_mappings test_preload_llama2c test_preload_llama)
  flexpage_test(${suite} ${suite}.c preload/preload_util.c region_util.c)
  target_include_directories(${suite} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR} ${CMAKE_CURRENT_SOURCE_DIR}/preload)
  target_link_libraries(${suite} PRIVATE flexpage_pager flexpage_testutil flexpage_gguf_testutil)
  target_compile_definitions(${suite} PRIVATE
    FLEXPAGE_PRELOAD_LIB="$<TARGET_FILE:flexpage_preload>"
    FLEXPAGE_PROBE="$<TARGET_FILE:preload_probe>"
    FLEXPAGE_SANITIZER_PRELOAD="${sanitizer_preload}")
  add_dependencies(${suite} flexpage_preload preload_probe flexpage)
  set_tests_properties(${suite} PROPERTIES FIXTURES_REQUIRED preload_peers)
endforeach()
