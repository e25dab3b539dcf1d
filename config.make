# Appends to nginx's Makefile the rule that builds the Rust static library.
# cargo tracks its own sources, so the rule always runs and rebuilds only what
# changed. NGINX_SOURCE_DIR/NGINX_BUILD_DIR point nginx-sys at this tree.

ngx_upsync_objs=$(cd "$NGX_OBJS" && pwd)
ngx_upsync_src=$(pwd)

cat << END >> $NGX_MAKEFILE

.PHONY: $ngx_upsync_lib

$ngx_upsync_lib:
	cd "$ngx_addon_dir" && \\
	NGINX_SOURCE_DIR="$ngx_upsync_src" NGINX_BUILD_DIR="$ngx_upsync_objs" \\
	${NGX_CARGO:-cargo} rustc --release --lib --crate-type staticlib \\
		--no-default-features --features nginx \\
		--target-dir "$ngx_upsync_objs/ngx_http_upsync_module_rust"

END

if [ "$ngx_upsync_link" = DYNAMIC ]; then
    cat << END >> $NGX_MAKEFILE
$NGX_OBJS${ngx_dirsep}ngx_http_upsync_module$ngx_modext: $ngx_upsync_lib

END
fi
