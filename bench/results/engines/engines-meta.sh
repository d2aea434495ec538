declare -- model_orig="/root/.cache/flexpage/tinyllama-1.1b-q8_0-seed7.gguf"
declare -- model_bytes="1169807904"
declare -- tokens="8"
declare -- threads="1"
declare -- prompt="Once upon a time"
declare -A margin=([llama]="64" [preload]="80" [flexpage]="64" )
declare -A compute=([llama]="2.591" [flexpage]="5.17" )
declare -- compute_log="llama.cpp 2.591, flexpage run 4.02, llama.cpp 1.112, flexpage run 5.17, llama.cpp 1.676, flexpage run 2.75"
declare -A rates=([full]="750000000" [1G]="610000000" [250M]="250000000" )
declare -- rate_log="full: 0.75 and 0.28 GB/s; 1G: 0.61 and 0.27 GB/s; 250M: 0.20 and 0.25 GB/s"
declare -a tier_name=([0]="full" [1]="1G" [2]="250M")
declare -a tier_bps=([0]="0" [1]="1000000000" [2]="250000000")
declare -a tier_reps=([0]="3" [1]="3" [2]="3")
declare -a tier_budgets=([0]="100/75/50/35/25" [1]="100/75/50/35/25" [2]="100/50/25")
declare -a systems=([0]="llama-mmap" [1]="llama-mmap+mlock" [2]="llama-dio" [3]="llama-none" [4]="llama-mlock" [5]="llama-preload" [6]="flexpage-run")
declare -a budget_list=([0]="100" [1]="75" [2]="50" [3]="35" [4]="25")
declare -A plan_stream=([100]=1069548 [75]=258002125 [50]=549506253 [35]=725258076 [25]=843107533 )
declare -- started="2026-12-03 11:56 UTC"
declare -- elapsed="3133"
declare -- cpu_model="AMD EPYC"
declare -- cores="2"
declare -- commit="43a02eb"
declare -- llama_commit="de3ff81"
