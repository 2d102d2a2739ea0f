//! What the actor tests share: the classic example's catalog.

use inkling_domain::Product;

pub fn product(id: &str, title: &str, category: &str, brand: &str, price: f64) -> Product {
    Product {
        title: title.into(),
        brand: Some(brand.into()),
        rating: Some(4.5),
        ..inkling_domain::testing::product(id, category, price)
    }
}

pub fn classic_catalog() -> Vec<Product> {
    vec![
        product("iphone-14", "iPhone 14", "手机", "Apple", 8000.0),
        product("iphone-se", "iPhone SE", "手机", "Apple", 4500.0),
        product("xiaomi-12", "Xiaomi 12", "手机", "Xiaomi", 3500.0),
        product("macbook-pro", "Macbook Pro", "电脑", "Apple", 15000.0),
        product("ipad-mini", "iPad Mini", "平板", "Apple", 3000.0),
    ]
}
