# bench/prune_units: removing sub-blocks (a layer's attention or FFN) against
# whole blocks at equal bytes, for bench/prune --units (docs/prune.md).
add_executable(prune_units ${CMAKE_CURRENT_LIST_DIR}/prune_units.c
  ${CMAKE_CURRENT_LIST_DIR}/../tools/flexpage/text_input.c)
target_link_libraries(prune_units PRIVATE flexmodel m)
