declare -- model_orig="/root/.cache/flexpage/tinyllama-1.1b-q8_0-seed7.gguf"
declare -- model_bytes="1169807904"
declare -- tokens="8"
declare -- threads="1"
declare -- prompt="Once upon a time"
declare -A margin=([llama]="64" [preload]="96" [flexpage]="64" )
declare -A compute=([llama]="11.557" [flexpage]="18.99" )
declare -- compute_log="llama.cpp 9.653, flexpage run 18.76, llama.cpp 8.616, flexpage run 16.00, llama.cpp 11.557, flexpage run 18.99"
declare -A rates=([full]="1090126047" )
declare -- rate_log="full: 1.09 and 0.92 GB/s"
declare -a tier_name=([0]="full")
declare -a tier_bps=([0]="0")
declare -a tier_reps=([0]="3")
declare -a tier_budgets=([0]="100/75/50/35/25")
declare -a systems=([0]="llama-mmap" [1]="llama-mmap+mlock" [2]="llama-dio" [3]="llama-none" [4]="llama-mlock" [5]="llama-preload" [6]="flexpage-run")
declare -a budget_list=([0]="100" [1]="75" [2]="50" [3]="35" [4]="25")
declare -A plan_stream=([35]="725258076" [50]="549506253" [75]="258002125" [25]="843107533" [100]="1069548" )
declare -- started="2026-12-03 15:59 UTC"
declare -- elapsed="255"
declare -- cpu_model="AMD EPYC"
declare -- cores="2"
declare -- commit="5df6978"
declare -- llama_commit="de3ff81"
