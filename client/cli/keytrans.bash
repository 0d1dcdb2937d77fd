# bash completion for keytrans(1): the commands, each command's options, the
# values of its enumerations, file names, and the daemon's key names (asked
# of the daemon with "keytrans keys" when it answers). Needs only bash; the
# option lists follow each command's --help (tests/integration/test_cli_usability.py
# checks that they agree).

_keytrans_commands="info keys stats pubkey unwrap wrap copp-sign copp-open opm-sign opm-open
	session-mac session-verify session-close keygen import bench"
_keytrans_globals="-s --socket --json -h --help -V --version"

_keytrans_options()
{
	case $1 in
	stats) echo "--prometheus --http" ;;
	pubkey) echo "--format -o --out" ;;
	unwrap) echo "-i --in -o --out --oaep --strict" ;;
	wrap) echo "--to --to-key --alg --key --generate --bits --key-blob --key-out --oaep -o --out" ;;
	copp-sign | opm-sign) echo "--to --to-key --random --aes-key --status-seq --command-seq -o --out" ;;
	copp-open) echo "-i --in --expect-random --seal --strict" ;;
	opm-open) echo "-i --in --expect-random --seal" ;;
	session-mac) echo "-i --in" ;;
	session-verify) echo "-i --in --omac --kind" ;;
	keygen) echo "--bits" ;;
	bench) echo "--op --key --to --alg -c --connections -P --pipeline -d --duration" \
		"-n --requests --distinct-recipients --strict" ;;
	esac
}

# The daemon's key names, through the socket given on the line if any.
_keytrans_key_names()
{
	local sock=() i
	for ((i = 1; i < ${#COMP_WORDS[@]} - 1; i++)); do
		case ${COMP_WORDS[i]} in
		-s | --socket) sock=(-s "${COMP_WORDS[i + 1]}") ;;
		esac
	done
	"${COMP_WORDS[0]}" "${sock[@]}" keys 2>/dev/null | awk 'NR > 1 { print $1 }'
}

# The words of $1 that start with $2, in any case (enumerations are case-insensitive).
_keytrans_enum()
{
	local w
	COMPREPLY=()
	for w in $1; do
		[[ ${w,,} == "${2,,}"* ]] && COMPREPLY+=("$w")
	done
}

_keytrans_files()
{
	compopt -o filenames 2>/dev/null
	COMPREPLY=($(compgen -f -- "$1"))
}

# Completes the value of option $2 of command $1; 1 when $2 takes no value.
_keytrans_value()
{
	local cmd=$1 opt=$2 cur=$3
	case $opt in
	-s | --socket | -i | --in | -o | --out | --to | --key-blob | --key-out)
		_keytrans_files "$cur" ;;
	--format)
		_keytrans_enum "blob pem der cng" "$cur" ;;
	--kind)
		_keytrans_enum "status command" "$cur" ;;
	--op)
		_keytrans_enum "unwrap unwrap-oaep wrap wrap-generate copp-sign copp-open opm-sign opm-open
			session-mac session-verify pubkey" "$cur" ;;
	--alg)
		if [[ $cmd == bench ]]; then
			_keytrans_enum "AES_128 AES_256" "$cur"
		else
			_keytrans_enum "AES_128 AES_192 AES_256 3DES 3DES_112 DES RC2 RC4" "$cur"
		fi ;;
	--bits)
		if [[ $cmd == keygen ]]; then
			_keytrans_enum "2048 3072 4096" "$cur"
		else
			_keytrans_enum "40 56 64 128" "$cur"
		fi ;;
	--to-key | --key)
		if [[ $cmd == wrap && $opt == --key ]]; then
			COMPREPLY=()        # hexadecimal
		else
			COMPREPLY=($(compgen -W "$(_keytrans_key_names)" -- "$cur"))
		fi ;;
	--random | --aes-key | --expect-random | --omac | --status-seq | --command-seq | -c | --connections | \
	-P | --pipeline | -d | --duration | -n | --requests | --distinct-recipients)
		COMPREPLY=() ;;
	*)
		return 1 ;;
	esac
	return 0
}

_keytrans()
{
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
	local cmd="" npos=0 i w

	# "--opt=value": bash splits at "=" (COMP_WORDBREAKS).
	if [[ $cur == = ]]; then
		cur=""
	elif [[ $prev == = ]]; then
		prev=${COMP_WORDS[COMP_CWORD - 2]}
	fi
	# The command, and how many arguments it already has.
	for ((i = 1; i < COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		if [[ $w == -* || $w == = || ${COMP_WORDS[i + 1]} == = ]]; then
			continue
		elif [[ ${COMP_WORDS[i - 1]} == = ]] || _keytrans_takes_value "$cmd" "${COMP_WORDS[i - 1]}"; then
			continue
		elif [[ -z $cmd ]]; then
			cmd=$w
		else
			((npos++))
		fi
	done
	COMPREPLY=()
	if _keytrans_takes_value "$cmd" "$prev"; then
		_keytrans_value "$cmd" "$prev" "$cur"
		return 0
	fi
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$_keytrans_globals $(_keytrans_options "$cmd")" -- "$cur"))
	elif [[ -z $cmd ]]; then
		COMPREPLY=($(compgen -W "$_keytrans_commands" -- "$cur"))
	else
		case $cmd:$npos in
		pubkey:0 | unwrap:0 | copp-open:0 | opm-open:0)
			COMPREPLY=($(compgen -W "$(_keytrans_key_names)" -- "$cur")) ;;
		import:1)
			_keytrans_files "$cur" ;;
		esac
	fi
	return 0
}

# 0 when option $2 of command $1 (or a global one) takes a value.
_keytrans_takes_value()
{
	case $2 in
	-s | --socket | -i | --in | -o | --out | --to | --to-key | --alg | --key | --bits | --key-blob | \
	--key-out | --format | --random | --aes-key | --status-seq | --command-seq | --expect-random | \
	--omac | --kind | --op | -c | --connections | -P | --pipeline | -d | --duration | -n | --requests | \
	--distinct-recipients)
		return 0 ;;
	esac
	return 1
}

complete -F _keytrans keytrans
