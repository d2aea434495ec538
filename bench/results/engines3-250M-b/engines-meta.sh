declare -- model_orig="/root/.cache/flexpage/tinyllama-1.1b-q8_0-seed7.gguf"
declare -- model_bytes="1169807904"
declare -- tokens="8"
declare -- threads="1"
declare -- prompt="Once upon a time"
declare -A margin=([llama]="64" [preload]="96" [flexpage]="64" )
declare -A compute=([llama]="12.842" [flexpage]="21.22" )
declare -- compute_log="llama.cpp 12.842, flexpage run 18.84, llama.cpp 11.623, flexpage run 21.22, llama.cpp 11.668, flexpage run 20.43"
declare -A rates=([250M]="257139325" )
declare -- rate_log="250M: 0.26 and 0.26 GB/s"
declare -a tier_name=([0]="250M")
declare -a tier_bps=([0]="250000000")
declare -a tier_reps=([0]="3")
declare -a tier_budgets=([0]="75/35")
declare -a systems=([0]="llama-mmap" [1]="llama-preload" [2]="flexpage-run")
declare -a budget_list=([0]="100" [1]="75" [2]="50" [3]="35" [4]="25")
declare -A plan_stream=([35]="725258076" [50]="549506253" [75]="258002125" [25]="843107533" [100]="1069548" )
declare -- started="2026-12-03 17:46 UTC"
declare -- elapsed="485"
declare -- cpu_model="AMD EPYC"
declare -- cores="2"
declare -- commit="629afcd"
declare -- llama_commit="de3ff81"
