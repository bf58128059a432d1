//! The `#[quadriga::task]` attribute. Use it through the `quadriga` crate.
#![forbid(unsafe_code)]

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Error, FnArg, GenericArgument, ItemFn, LitStr, PathArguments, ReturnType, Token, Type};

/// Turns a plain function into a Quadriga task. See `quadriga::Task`.
#[proc_macro_attribute]
pub fn task(attr: TokenStream, item: TokenStream) -> TokenStream {
    let args = syn::parse_macro_input!(attr as Args);
    let func = syn::parse_macro_input!(item as ItemFn);
    expand(args, func)
        .unwrap_or_else(Error::into_compile_error)
        .into()
}

#[derive(Default)]
struct Args {
    name: Option<LitStr>,
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = Args::default();
        while !input.is_empty() {
            let key: syn::Ident = input.parse()?;
            if key != "name" {
                return Err(Error::new(
                    key.span(),
                    "unknown argument; expected `name = \"...\"`",
                ));
            }
            input.parse::<Token![=]>()?;
            let value: LitStr = input.parse()?;
            if value.value().is_empty() {
                return Err(Error::new(value.span(), "a task name cannot be empty"));
            }
            args.name = Some(value);
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(args)
    }
}

/// `Some(T)` when `ty` is spelled `Result<T, ..>` (any path ending in `Result`).
fn result_ok_type(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first()? {
        GenericArgument::Type(t) => Some(t),
        _ => None,
    }
}

fn expand(args: Args, func: ItemFn) -> syn::Result<TokenStream2> {
    let sig = &func.sig;
    if let Some(asyncness) = sig.asyncness {
        return Err(Error::new(
            asyncness.span(),
            "a task cannot be `async` (yet): make it a plain function",
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(Error::new(
            sig.generics.span(),
            "a task cannot be generic: its name must name one function",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        return Err(Error::new(variadic.span(), "a task cannot be variadic"));
    }
    let mut arg_types = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(r) => {
                return Err(Error::new(
                    r.span(),
                    "a task is a free function, not a method",
                ));
            }
            FnArg::Typed(pat) => arg_types.push((*pat.ty).clone()),
        }
    }

    let vis = &func.vis;
    let ident = &sig.ident;
    let attrs = &func.attrs;
    let doc_attrs: Vec<_> = attrs.iter().filter(|a| a.path().is_ident("doc")).collect();
    let other_attrs: Vec<_> = attrs.iter().filter(|a| !a.path().is_ident("doc")).collect();
    let block = &func.block;
    let inputs = &sig.inputs;
    let output = &sig.output;
    let unsafety = &sig.unsafety;
    if let Some(u) = unsafety {
        return Err(Error::new(u.span(), "a task cannot be `unsafe`"));
    }

    let ret_ty: Type = match output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => (**ty).clone(),
    };
    let (output_ty, wrap) = match result_ok_type(&ret_ty) {
        Some(ok) => (ok.clone(), quote!(::quadriga::__private::from_result)),
        None => (ret_ty.clone(), quote!(::quadriga::__private::ok)),
    };

    let n = arg_types.len();
    let (input_ty, call_args) = match n {
        0 => (quote!(()), quote!()),
        1 => {
            let t = &arg_types[0];
            (quote!(#t), quote!(input))
        }
        _ => {
            let idx = (0..n).map(syn::Index::from);
            (quote!((#(#arg_types,)*)), quote!(#(input.#idx),*))
        }
    };
    let unused_input = if n == 0 {
        quote!(let () = input;)
    } else {
        quote!()
    };

    let name = match &args.name {
        Some(lit) => quote!(#lit),
        None => {
            let s = LitStr::new(&ident.to_string(), Span::call_site());
            quote!(::core::concat!(::core::module_path!(), "::", #s))
        }
    };
    let fn_ptr_args = arg_types.iter();
    let call_doc =
        format!("Runs `{ident}` directly on the calling thread, as a plain function call.");
    let helper = format_ident!("__quadriga_task_{}", ident);

    Ok(quote! {
        #(#doc_attrs)*
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
        #vis struct #ident {}

        // A braced struct has no constructor in the value namespace, so the
        // task's value can be a constant of the same name. Calls then go
        // through a constant (not a struct constructor, which lints such as
        // `clippy::no_effect` would take for a pure expression).
        #(#doc_attrs)*
        #[allow(non_upper_case_globals)]
        #vis const #ident: #ident = #ident {};

        impl #ident {
            #[doc = #call_doc]
            #(#other_attrs)*
            #[allow(clippy::needless_pass_by_value)]
            #vis fn call(#inputs) #output #block
        }

        #[doc(hidden)]
        #[allow(non_upper_case_globals)]
        const #helper: fn(#(#fn_ptr_args),*) -> #ret_ty = #ident::call;

        impl ::core::ops::Deref for #ident {
            type Target = fn(#(#arg_types),*) -> #ret_ty;
            #[inline(always)]
            fn deref(&self) -> &Self::Target {
                &#helper
            }
        }

        ::quadriga::__private::inventory::submit! {
            ::quadriga::__private::TaskEntry::of::<#ident>()
        }

        impl ::quadriga::Task for #ident {
            type Input = #input_ty;
            type Output = #output_ty;
            const NAME: &'static str = #name;

            #[inline]
            fn run(&self, input: Self::Input) -> ::core::result::Result<Self::Output, ::quadriga::TaskError> {
                #unused_input
                #wrap(#ident::call(#call_args))
            }
        }
    })
}
