# flexpage trace (the paging lab): summary, histograms, Chrome JSON and
# plots, run as a program on a trace recorded through libflexpage.
# Included by tests/CMakeLists.txt, which defines flexpage_test().
flexpage_test(test_trace_tool trace_tool_util.c json_util.c test_trace_tool_summary.c
  test_trace_tool_json.c test_trace_tool_chrome.c test_trace_tool_plot.c test_trace_tool_errors.c
  test_trace_tool_why.c)
target_link_libraries(test_trace_tool PRIVATE flexpage_pager)
add_dependencies(test_trace_tool flexpage)
set_tests_properties(test_trace_tool PROPERTIES TIMEOUT 120)
