# Suites of the kernels, the runtime and the tool code that wires them to
# the pager (issue 3).
flexpage_test(test_kernels test_kernels.c)
target_link_libraries(test_kernels PRIVATE flexpage_kernels)
flexpage_test(test_kernels_f16 test_kernels_f16.c)
target_link_libraries(test_kernels_f16 PRIVATE flexpage_kernels)

flexpage_test(test_forward test_forward.c ref_forward.c)
target_link_libraries(test_forward PRIVATE flexpage_runtime)

# Helpers of the suites below, over flexmodel (tools/model), the library
# that wires model files to the runtime.
add_library(flexpage_rt_testutil STATIC ${CMAKE_CURRENT_SOURCE_DIR}/rt_util.c)
target_include_directories(flexpage_rt_testutil PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_compile_definitions(flexpage_rt_testutil PRIVATE FLEXPAGE_BUILD_DIR="${CMAKE_BINARY_DIR}"
  FLEXPAGE_TOOL="$<TARGET_FILE:flexpage>")
target_link_libraries(flexpage_rt_testutil PUBLIC flexmodel)

flexpage_test(test_paged_runtime test_paged_runtime.c region_util.c)
target_link_libraries(test_paged_runtime PRIVATE flexpage_rt_testutil)

flexpage_test(test_models test_models.c ref_forward.c)
target_link_libraries(test_models PRIVATE flexpage_rt_testutil)
add_dependencies(test_models flexpage)

# GGUF models: stories260K as GGUF and checkpoint, GGUF out, a synthetic
# TinyLlama-layout model as GGUF and image, bad GGUF models.
flexpage_test(test_gguf_models test_gguf_models.c)
target_link_libraries(test_gguf_models PRIVATE flexpage_rt_testutil)
add_dependencies(test_gguf_models flexpage)

flexpage_test(test_defaults test_defaults.c)
target_link_libraries(test_defaults PRIVATE flexpage_rt_testutil)
add_dependencies(test_defaults flexpage)

# Compression-aware quantization, the zstd-split codec and pack --codec
# auto on stories260K.
flexpage_test(test_compress test_compress.c ref_forward.c)
target_link_libraries(test_compress PRIVATE flexpage_rt_testutil flexpage_testutil PkgConfig::ZSTD)
add_dependencies(test_compress flexpage)

# Images holding both forms of a chunk (pack --codec both), the form a
# region reads at given or measured rates, and the open-time probe.
flexpage_test(test_adapt test_adapt.c test_adapt_pipe.c)
target_link_libraries(test_adapt PRIVATE flexpage_rt_testutil flexpage_testutil PkgConfig::ZSTD
  flexpage_pager)
target_include_directories(test_adapt PRIVATE ${CMAKE_SOURCE_DIR}/pager/src)
add_dependencies(test_adapt flexpage)
