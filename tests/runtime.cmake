# Suites of the kernels, the runtime and the tool code that wires them to
# the pager (issue 3).
flexpage_test(test_kernels test_kernels.c)
target_link_libraries(test_kernels PRIVATE flexpage_kernels)

flexpage_test(test_forward test_forward.c ref_forward.c)
target_link_libraries(test_forward PRIVATE flexpage_runtime)

# The tool code that wires files to the runtime (model import and load,
# the synthetic-model generator), built once for the suites below.
set(FLEXPAGE_TOOL_DIR ${CMAKE_SOURCE_DIR}/tools/flexpage)
add_library(flexpage_rt_testutil STATIC
  ${CMAKE_CURRENT_SOURCE_DIR}/rt_util.c
  ${FLEXPAGE_TOOL_DIR}/model_import.c
  ${FLEXPAGE_TOOL_DIR}/model_load.c
  ${FLEXPAGE_TOOL_DIR}/synth_gen.c)
target_include_directories(flexpage_rt_testutil PUBLIC ${CMAKE_CURRENT_SOURCE_DIR} ${FLEXPAGE_TOOL_DIR})
target_compile_definitions(flexpage_rt_testutil PRIVATE FLEXPAGE_BUILD_DIR="${CMAKE_BINARY_DIR}")
target_link_libraries(flexpage_rt_testutil PUBLIC flexpage_pager flexpage_runtime flexpage_kernels)

flexpage_test(test_paged_runtime test_paged_runtime.c region_util.c)
target_link_libraries(test_paged_runtime PRIVATE flexpage_rt_testutil)

flexpage_test(test_models test_models.c ref_forward.c)
target_link_libraries(test_models PRIVATE flexpage_rt_testutil)
add_dependencies(test_models flexpage)
